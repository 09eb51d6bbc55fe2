/*  broker_bench.c: how fast caveatd carries reports end to end, against what
 *  the transport alone and a mainstream broker manage on the same machine.
 *  Not a test: it prints figures against targets and exits 0 whatever they
 *  are (timings belong here, never in ctest). All traffic is on 127.0.0.1.
 *
 *  Workload 1, throughput: one publisher, one subscriber, ~1 KB reports,
 *  everything released (bench/data/throughput.yaml), through
 *    a. the real caveatd (started as the end-to-end harness does), with
 *       --sync full, normal and off (off only shows what durability
 *       costs): cv_client_publish of --batch reports a call (libcaveat
 *       sends them in frames of at most 256 KB, up to 8 in flight), the subscriber
 *       cv_client_receive with cumulative cv_client_ack, its credit
 *       the window;
 *    b. a zero-logic forwarder in this process: a CURVE ROUTER whose ZAP
 *       handler admits the same two keys, passing each 1 KB message from
 *       the publisher's DEALER to the subscriber's DEALER unchanged;
 *    c. nats-server with TLS and per-user subject permissions, when it is
 *       installed and this program was built with libnats.
 *    d. the store alone (broker/cv_store.h), in this process with no
 *       network: a fresh SQLite store under /tmp with --sync normal (no
 *       fsync per commit; the checkpointer thread syncs at checkpoints,
 *       as in caveatd), and per --batch reports what caveatd does for
 *       each accepted report in one turn (put, route to the one queue,
 *       commit, and the checkpoint it would ask for). caveatd stores
 *       every report durably before it acknowledges it, so this is the
 *       ceiling the storage layer puts on caveatd on this machine: how
 *       far the target below is from what the store permits. It runs
 *       last of all phases (see main).
 *  Each path runs for --seconds; the publisher stays at most --window
 *  reports ahead of the subscriber (as credit does), so a slow path shows
 *  as a low rate, not as an ever-growing queue. reports/s is end to end:
 *  reports received / (first publish .. last receipt); for the store
 *  alone, reports committed / seconds.
 *
 *  Workload 2, fan-out: a generated policy of 50 subscriber agencies of six
 *  types and one publisher, six rules with different field grants and
 *  masks, each report released to about 20 agencies. A publisher offers a
 *  fixed 1,000 reports/s (clock_nanosleep to an absolute schedule); every
 *  report carries its scheduled and actual send times (CLOCK_MONOTONIC) in
 *  `summary`, which every rule shares, so each subscriber measures
 *  publish-to-delivery latency at receipt. It runs with --sync full, then
 *  --sync normal, then through
 *    the zero-logic forwarder of 1b (its own thread and libzmq context in
 *    this process), admitting exactly the 51 agencies' keys: the same
 *    schedule and reports, each sent as one message, the same 50
 *    subscribers each on its own thread and CURVE DEALER. The forwarder
 *    reads the sender from User-Id, decides each report's recipients with
 *    the engine on the same policy (as caveatd must), and sends each the
 *    whole report, one message a recipient, blocking when a pipe is full;
 *    no store, acknowledgements, credit or redaction. On a small machine
 *    the fan-out's CURVE and TCP work alone can use most of it, so this is
 *    the latency floor the transport puts under caveatd's figures at this
 *    load: how much of caveatd's latency is caveatd's.
 *
 *  Workload 1 with a partnership (--agencies N, N > 2): caveatd --sync
 *  normal as in 1a, but its policy also lists N - 2 agencies that never
 *  connect and two rules like a partnership's that send the subscriber
 *  nothing more (bench_partnership_harness): the publisher and subscriber
 *  are two of N. Against 1a's --sync normal (run with it), this is what
 *  the partnership's size costs per report: routing decides only the
 *  policy's candidates for a report, so the target is >= 0.8 at 2,000.
 *
 *  Every run makes fresh CURVE keys (broker and agencies) in the harness's
 *  temporary directory: see make_key.
 *
 *  Workload 1's caveatd paths keep --pipeline N publish calls in flight
 *  (default 4: with --batch's 1000 reports, libcaveat's 16 batches in
 *  flight), as a publisher that wants throughput would
 *  (cv_client_publish_start), and the subscriber's credit is the window
 *  (at most 10,000): against --pipeline 1, this is what the wait for each
 *  call's PublishAck costs.
 *
 *  Workload 1's caveatd paths with --receipts: the subscriber asks for a
 *  receipt of each delivery (Hello.receipts) and takes them as they come;
 *  against a run without, this is what receipts cost (the "delivered"
 *  leaves are written either way).
 *
 *  Usage: broker_bench [--seconds S] [--batch N] [--window N] [--rate R]
 *                      [--in-flight N] [--pipeline N] [--agencies N] [--receipts] [--repeat N]
 *                      [--only full|normal|off|forwarder|nats|store|fanout|
 *                              fanout-full|fanout-normal|fanout-forwarder|partnership|
 *                              nolog|fanout-nolog|audit|audit-throughput|throughput]
 *  ("throughput" runs workload 1's --sync full and the forwarder, in
 *  turns, for its target: with --repeat, the ratio's median is the
 *  verdict, from one command;
 *  "nolog" and "fanout-nolog" run --sync full with caveatd's audit log off
 *  (--audit-log off); "audit" runs workloads 1 and 2 with it on and off, in
 *  turns, for the log's cost: target, on >= 0.85 x off in reports/s, and
 *  under 1 ms more on the fan-out's p99; "audit-throughput" runs only
 *  workload 1's two.
 *  "fanout" runs all four fan-out phases; "partnership" runs --sync
 *  normal with 2 agencies and with --agencies N.)
 *
 *  --repeat N runs the chosen phases N times over, each run printed as
 *  ever, then the targets' figures of every run and their medians, with
 *  the verdicts on the medians: one run of a tail on two busy cores moves
 *  by tens of percent, and a target is met or missed by the median. The
 *  audit log's on and off phases take turns going first.
 */
#include <arpa/inet.h>
#include <czmq.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
#include "cv_alloc.h"
#include "cv_proto.h" /* internals: the schema, JSON, the wire protocol */
#include "cv_policy.h"
#include "cv_store.h"
#include "bench_common.h"
#include "harness.h"

#define REPORT_BYTES       1024  /* target packed size of a report */
#define DRAIN_LIMIT_S      10.0  /* after publishing stops, how long to wait for the rest */
#define PUBLISH_TIMEOUT_MS 10000 /* a publish call that takes longer ends the phase */
#define SUB_CREDIT         1000  /* Hello.credit of workload 2's subscribers */
#define MAX_CREDIT         10000 /* the most a Hello may ask (docs/protocol.md) */
#define ACK_EVERY          100   /* a caveat subscriber acknowledges at least this often */
#define FANOUT_MAX_BATCH   500   /* reports one paced publish call may carry */
#define N_SUBSCRIBERS      50    /* fan-out: subscriber agencies */
#define NATS_SUBJECT       "caveat.reports"
#define FORWARDER_ZMQ      7  /* thread-name prefix of the forwarder's libzmq context */
#define MAX_REPEAT         50 /* --repeat at most */

/* ------------------------------------------------------------------------ */
/*  Small utilities.                                                        */

static double seconds_between(uint64_t from, uint64_t to)
{
    return to > from ? (double)(to - from) * 1e-9 : 0.0;
}

static void sleep_us(unsigned us)
{
    bench_sleep_until(bench_now_ns() + (uint64_t)us * 1000u);
}

/*  CPU of process pid's threads whose name starts with prefix. */
static double process_threads_cpu(pid_t pid, const char *prefix)
{
    char path[300];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *dir = opendir(path);
    double total = 0;
    struct dirent *e;
    while (dir && (e = readdir(dir))) {
        if (e->d_name[0] == '.')
            continue;
        char name[64] = "";
        snprintf(path, sizeof path, "/proc/%d/task/%s/comm", (int)pid, e->d_name);
        FILE *f = fopen(path, "r");
        if (f) {
            if (!fgets(name, sizeof name, f))
                name[0] = '\0';
            fclose(f);
        }
        if (strncmp(name, prefix, strlen(prefix)) != 0)
            continue;
        snprintf(path, sizeof path, "/proc/%d/task/%s/stat", (int)pid, e->d_name);
        total += bench_stat_cpu(path);
    }
    if (dir)
        closedir(dir);
    return total;
}

/*  CPU of this process's threads whose name starts with prefix. */
static double threads_cpu(const char *prefix)
{
    return process_threads_cpu(getpid(), prefix);
}

/*  caveatd's threads, by the names it gives them: where a report's CPU goes
 *  (its loop keeps the process's name). */
static const char *const caveatd_threads[] = {"caveatd",        "ZMQbg/IO",       "cv-checksums",
                                              "cv-view-hashes", "cv-leaf-hashes", "cv-sync",
                                              "cv-checkpoint"};
#define N_CAVEATD_THREADS (sizeof caveatd_threads / sizeof *caveatd_threads)

static void caveatd_threads_cpu(pid_t pid, double cpu[N_CAVEATD_THREADS])
{
    for (size_t i = 0; i < N_CAVEATD_THREADS; i++)
        cpu[i] = process_threads_cpu(pid, caveatd_threads[i]);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/*  The q-quantile of sorted values (microseconds), in milliseconds. */
static double quantile_ms(const uint32_t *sorted, size_t n, double q)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return sorted[i] / 1000.0;
}

/* ------------------------------------------------------------------------ */
/*  Options and results.                                                    */

typedef struct {
    double seconds;
    int batch;       /* reports per cv_client_publish call, workload 1 */
    uint64_t window; /* reports the publisher may be ahead of the subscriber */
    int rate;        /* reports/s offered, workload 2 */
    int in_flight;   /* publishes workload 2's publisher may have unacknowledged */
    int pipeline;    /* publish calls workload 1's caveatd publisher may have in flight */
    int agencies;    /* in the policy of workload 1's partnership path; 2: no such path */
    const char *only;
    bool receipts; /* workload 1's caveat subscriber asks for receipts */
    int repeat;    /* runs of the phases, one after another; verdicts on medians */
} options_t;

/*  The paths of workload 1, in the order they print (and run, but for the
 *  store alone: see main). */
enum { P_FULL, P_NOLOG, P_NORMAL, P_OFF, P_FORWARDER, P_NATS, P_STORE, P_PARTNERSHIP, N_PATHS };

/*  One path of workload 1. */
typedef struct {
    const char *name;
    bool ran;
    bool in_process;    /* no clients: server is this process, the store */
    char note[320];     /* why it did not run, or what went wrong */
    uint64_t published; /* acknowledged (caveatd) or handed to the transport */
    uint64_t received;
    double publish_s;                     /* first publish .. last publish returned */
    double end_to_end_s;                  /* first publish .. last receipt */
    double server_cpu_s;                  /* the broker's CPU in that time */
    double clients_cpu_s;                 /* this process's, less any in-process server */
    double server_faults, clients_faults; /* minor page faults in that time (caveatd's paths) */
    double checksum_loop_s; /* caveatd's loop on checksums (its stats); < 0: unknown */
    double read_back;       /* caveatd: reports it read back, not in its cache; < 0: unknown */
    double turns;           /* caveatd: turns of its loop over its life; < 0: unknown */
    bool threads;           /* caveatd: its threads' CPU below was taken */
    double thread_cpu_s[N_CAVEATD_THREADS];
} path_result_t;

/*  Workload 2. */
typedef struct {
    const char *label; /* its column: "--sync full", "--sync normal", "forwarder" */
    bool ran;
    char note[320];
    int agencies, rules;
    double recipients_per_report;
    uint64_t reports, published, expected, delivered, unexpected;
    double publish_s, deliver_s, server_cpu_s, clients_cpu_s;
    uint64_t calls;
    double call_p50_ms, call_p99_ms;
    double sched_p50, sched_p99, sched_max; /* from the scheduled send time, ms */
    double sent_p50, sent_p99, sent_max;    /* from the actual send time, ms */
    char views[400];                        /* mean view size per recipient type */
    bool stats;                 /* caveatd's stats were read before and after the phase: */
    double stalls, stall_share; /* WAL syncs over 5 ms; their time beyond it / the phase's */
} fanout_result_t;

/*  The phases of workload 2, in the order they run and print as columns. */
enum { F_FULL, F_NORMAL, F_FORWARDER, F_NOLOG, N_FANOUT };

/* ------------------------------------------------------------------------ */
/*  Reports: bench_make_report (bench_common.c), padded to ~1 KB.          */

#define STAMP_FORMAT "due=%020" PRIu64 " sent=%020" PRIu64 " (broker_bench)"

/*  A report of the category and area whose packed form is ~REPORT_BYTES
 *  (with a broker-set originator), its summary a stamp of the right length. */
static Caveat__Report *make_report(const char *category, const char *area)
{
    char summary[128];
    snprintf(summary, sizeof summary, STAMP_FORMAT, (uint64_t)0, (uint64_t)0);
    return bench_make_report("broker_bench", "bb-000000000000", category, area, summary,
                             REPORT_BYTES);
}

/*  Why a publish call failed: its error, or the first refusal's reason. */
static const char *publish_failure(int refused, const cv_error_t *err,
                                   const cv_publish_result_t *results, size_t n)
{
    for (size_t i = 0; refused > 0 && i < n; i++)
        if (results[i].status != CAVEAT__WIRE__STATUS__OK)
            return results[i].reason;
    return err->msg;
}

static void replace(char **field, const char *value)
{
    free(*field);
    *field = strdup(value);
}

/*  A fresh id (a report id names one report) and the two send times. */
static void stamp(Caveat__Report *r, const char *run, uint64_t serial, uint64_t due, uint64_t sent)
{
    char text[128];
    snprintf(text, sizeof text, "bb-%s-%012" PRIu64, run, serial);
    replace(&r->id, text);
    snprintf(text, sizeof text, STAMP_FORMAT, due, sent);
    replace(&r->summary, text);
}

/* ------------------------------------------------------------------------ */
/*  Keys and the broker's directory.                                        */

/* ------------------------------------------------------------------------ */
/*  Workload 1: a flow of reports between one publisher and one subscriber. */

typedef struct {
    const options_t *opt;
    atomic_uint_fast64_t sent, received;
    atomic_bool done, failed;
    uint64_t t_start, t_pub_end;
    _Atomic uint64_t t_last; /* last receipt */
    uint64_t deadline;       /* the subscriber gives up then */
    char error[300];
} flow_t;

static void flow_init(flow_t *f, const options_t *opt)
{
    memset(f, 0, sizeof *f);
    f->opt = opt;
    f->t_start = bench_now_ns();
    f->deadline = f->t_start + (uint64_t)((opt->seconds + DRAIN_LIMIT_S) * 1e9);
}

static void flow_fail(flow_t *f, const char *what, const char *why)
{
    if (!atomic_exchange(&f->failed, true))
        snprintf(f->error, sizeof f->error, "%.60s: %.230s", what, why);
}

/*  Holds the publisher while it is `more` reports from being too far ahead. */
static void flow_wait_window(flow_t *f, uint64_t more)
{
    while (!atomic_load(&f->failed) && bench_now_ns() < f->deadline &&
           atomic_load(&f->sent) + more > atomic_load(&f->received) + f->opt->window)
        sleep_us(100);
}

static bool flow_publishing(const flow_t *f)
{
    return !atomic_load(&f->failed) &&
           bench_now_ns() < f->t_start + (uint64_t)(f->opt->seconds * 1e9);
}

static void flow_publisher_done(flow_t *f)
{
    f->t_pub_end = bench_now_ns();
    atomic_store(&f->done, true);
}

static void flow_received(flow_t *f, uint64_t n)
{
    atomic_fetch_add(&f->received, n);
    atomic_store(&f->t_last, bench_now_ns());
}

/*  The subscriber is finished when it has everything that was sent, or
 *  has waited long enough. */
static bool flow_finished(const flow_t *f)
{
    if (atomic_load(&f->failed) || bench_now_ns() > f->deadline)
        return true;
    return atomic_load(&f->done) && atomic_load(&f->received) >= atomic_load(&f->sent);
}

static void flow_result(const flow_t *f, path_result_t *r)
{
    r->ran = true;
    r->published = atomic_load(&f->sent);
    r->received = atomic_load(&f->received);
    r->publish_s = seconds_between(f->t_start, f->t_pub_end);
    r->end_to_end_s = seconds_between(f->t_start, atomic_load(&f->t_last));
    if (atomic_load(&f->failed))
        snprintf(r->note, sizeof r->note, "%s", f->error);
    else if (r->received < r->published)
        snprintf(r->note, sizeof r->note, "only %" PRIu64 " of %" PRIu64 " received in time",
                 r->received, r->published);
}

/* ------------------------------------------------------------------------ */
/*  1a: through caveatd.                                                    */

typedef struct {
    flow_t flow;
    cv_client_t *publisher, *subscriber;
    const char *run; /* report id prefix */
} caveat_flow_t;

/*  Publishes --batch reports a call with up to --pipeline calls in flight
 *  (cv_client_publish_start, then _finish in order), as a publisher that
 *  wants throughput would: the broker has the next call's frames while
 *  the last one's commit is synced and acknowledged. */
static void *caveat_publisher(void *arg)
{
    caveat_flow_t *c = arg;
    flow_t *f = &c->flow;
    int n = f->opt->batch, depth = f->opt->pipeline;
    Caveat__Report **reports = calloc((size_t)(n * depth), sizeof *reports);
    cv_publish_result_t *results = calloc((size_t)(n * depth), sizeof *results);
    int64_t *tickets = calloc((size_t)depth, sizeof *tickets);
    for (int i = 0; i < n * depth; i++)
        reports[i] = make_report("vulnerable_individual", "hull");
    uint64_t serial = 0, started = 0, finished = 0;
    f->t_start = bench_now_ns();
    for (;;) {
        bool more = flow_publishing(f);
        if (finished < started && (!more || started - finished == (uint64_t)depth)) {
            size_t slot = (size_t)(finished++ % (uint64_t)depth);
            cv_error_t err = {0};
            int refused =
                cv_client_publish_finish(c->publisher, tickets[slot], PUBLISH_TIMEOUT_MS, &err);
            if (refused != 0)
                flow_fail(f, "publish",
                          publish_failure(refused, &err, results + slot * (size_t)n, (size_t)n));
            else
                atomic_fetch_add(&f->sent, (uint64_t)n);
            cv_publish_results_clear(results + slot * (size_t)n, (size_t)n);
            continue;
        }
        if (!more)
            break;
        flow_wait_window(f, (started - finished + 1) * (uint64_t)n);
        size_t slot = (size_t)(started % (uint64_t)depth);
        Caveat__Report **pool = reports + slot * (size_t)n;
        uint64_t t = bench_now_ns();
        for (int i = 0; i < n; i++)
            stamp(pool[i], c->run, serial++, t, t);
        cv_error_t err = {0};
        tickets[slot] = cv_client_publish_start(c->publisher, (const Caveat__Report *const *)pool,
                                                (size_t)n, results + slot * (size_t)n, &err);
        if (tickets[slot] < 0) { /* the calls in flight are finished before their memory goes */
            flow_fail(f, "publish", err.msg);
            cv_publish_results_clear(results + slot * (size_t)n, (size_t)n);
            continue;
        }
        started++;
    }
    flow_publisher_done(f);
    for (int i = 0; i < n * depth; i++)
        caveat__report__free_unpacked(reports[i], NULL);
    free(reports);
    free(results);
    free(tickets);
    return NULL;
}

static void *caveat_subscriber(void *arg)
{
    caveat_flow_t *c = arg;
    flow_t *f = &c->flow;
    uint64_t highest = 0, acked = 0;
    while (!flow_finished(f)) {
        cv_error_t err = {0};
        const cv_delivery_t *d = cv_client_receive(c->subscriber, 100, &err);
        if (d) {
            highest = d->seq;
            flow_received(f, 1);
        } else if (err.msg[0]) {
            flow_fail(f, "receive", err.msg);
        }
        while (f->opt->receipts && cv_client_receipt(c->subscriber))
            ; /* taken as they come, as an application keeps them */
        /* cumulative: every ACK_EVERY, and whenever the stream pauses */
        if (highest > acked && (!d || highest - acked >= ACK_EVERY)) {
            if (!cv_client_ack(c->subscriber, highest, &err))
                flow_fail(f, "ack", err.msg);
            acked = highest;
        }
    }
    return NULL;
}

/*  When a phase went wrong: the end of caveatd's log, before the harness
 *  removes its directory. */
static void show_broker_log(harness_t *h)
{
    char command[700];
    snprintf(command, sizeof command, "tail -n 20 %s >&2", harness_path(h, "broker.log"));
    fprintf(stderr, "broker_bench: the end of caveatd's log:\n");
    if (system(command) != 0)
        fprintf(stderr, "broker_bench: no log\n");
}

static void run_caveat_flow(caveat_flow_t *c, harness_t *h, path_result_t *r)
{
    pid_t pid = harness_pid(h);
    double cpu0 = bench_process_cpu(pid), self0 = bench_process_cpu(getpid());
    double faults0 = bench_process_faults(pid), self_faults0 = bench_process_faults(getpid());
    double threads0[N_CAVEATD_THREADS];
    caveatd_threads_cpu(pid, threads0);
    pthread_t pub, sub;
    flow_init(&c->flow, c->flow.opt);
    pthread_create(&sub, NULL, caveat_subscriber, c);
    pthread_create(&pub, NULL, caveat_publisher, c);
    pthread_join(pub, NULL);
    pthread_join(sub, NULL);
    r->server_cpu_s = bench_process_cpu(pid) - cpu0;
    r->clients_cpu_s = bench_process_cpu(getpid()) - self0;
    r->server_faults = bench_process_faults(pid) - faults0;
    r->clients_faults = bench_process_faults(getpid()) - self_faults0;
    caveatd_threads_cpu(pid, r->thread_cpu_s);
    for (size_t i = 0; i < N_CAVEATD_THREADS; i++)
        r->thread_cpu_s[i] -= threads0[i];
    r->threads = true;
    flow_result(&c->flow, r);
}

/*  caveatd's stats, a JSON object (malloc'd), or NULL when it cannot say. */
static char *broker_stats(cv_client_t *admin)
{
    cv_error_t err = {0};
    bool ok = false;
    char *stats = cv_client_admin(admin, "stats", &ok, 5000, &err);
    if (!ok) {
        free(stats);
        return NULL;
    }
    return stats;
}

/*  A counter in those stats, or -1 when there is none. */
static double stat_in(const char *stats, const char *name)
{
    char key[64];
    snprintf(key, sizeof key, "\"%s\":", name);
    const char *at = stats ? strstr(stats, key) : NULL;
    return at ? atof(at + strlen(key)) : -1;
}

/*  From caveatd's stats after the phase (-1 each when it cannot say): the
 *  time its loop spent on stored reports' checksums (checksum_loop_us),
 *  the reports it read back from the store (read_back: a subscriber
 *  farther behind than the report cache holds makes each cost about 1.7
 *  times as much) and its loop's turns. */
static void read_broker_counts(cv_client_t *admin, path_result_t *r)
{
    char *stats = admin ? broker_stats(admin) : NULL;
    double us = stat_in(stats, "checksum_loop_us");
    r->checksum_loop_s = us < 0 ? -1 : us / 1e6;
    r->read_back = stat_in(stats, "read_back");
    r->turns = stat_in(stats, "turns");
    free(stats);
}

/*  Workload 1's subscriber asks for credit of the whole window, so that
 *  what holds it back is the window, as for the forwarder's, and not a
 *  smaller credit: a subscriber of 1000 took at most that many a turn
 *  while a pipelined publisher's turns carried twice as many reports. */
static int w1_credit(const options_t *opt)
{
    return opt->window < MAX_CREDIT ? (int)opt->window : MAX_CREDIT;
}

/*  caveatd with --sync SYNC and a policy of `agencies` agencies: the two
 *  of the workload, and the rest a partnership that never connects. */
static void measure_caveatd(const options_t *opt, const char *sync, int agencies, bool audit,
                            path_result_t *r)
{
    static char partnership_name[64];
    snprintf(partnership_name, sizeof partnership_name, "caveatd %s, %d agencies", sync, agencies);
    r->name = agencies > 2                  ? partnership_name
              : !audit                      ? "caveatd --sync full, no audit log"
              : strcmp(sync, "full") == 0   ? "caveatd --sync full"
              : strcmp(sync, "normal") == 0 ? "caveatd --sync normal"
                                            : "caveatd --sync off (no durability)";
    harness_t *h = bench_partnership_harness(agencies, r->note, sizeof r->note);
    if (!h)
        return;
    caveat_flow_t c = {.flow.opt = opt, .run = sync};
    cv_error_t err = {0};
    if (!bench_start_broker_audit(h, sync, audit))
        snprintf(r->note, sizeof r->note, "caveatd did not start");
    else if (!(c.subscriber = harness_client_with(h, "bench-subscriber",
                                                  (cv_client_config_t){.credit = w1_credit(opt),
                                                                       .timeout_ms = 3000,
                                                                       .receipts = opt->receipts},
                                                  &err)) ||
             !(c.publisher = harness_client(h, "bench-publisher", NULL, 0, &err)))
        snprintf(r->note, sizeof r->note, "client: %.300s", err.msg);
    else
        run_caveat_flow(&c, h, r);
    read_broker_counts(c.publisher, r);
    cv_client_destroy(&c.publisher);
    cv_client_destroy(&c.subscriber);
    if (r->note[0])
        show_broker_log(h);
    harness_destroy(&h);
}

/* ------------------------------------------------------------------------ */
/*  1b: a zero-logic CURVE ROUTER forwarder, in its own libzmq context.     */
/*  Workload 2's forwarder phase runs the same forwarder with more keys.    */

#define FORWARDER_KEYS (N_SUBSCRIBERS + 1) /* fan-out: the publisher and 50 subscribers */

/*  A connection's routing id at the forwarder, once it said hello. */
typedef struct {
    uint8_t id[256];
    size_t len;
} route_t;

typedef struct forwarder_t forwarder_t;

/*  What the forwarder does with one message from keys[0], the publisher. */
typedef void(forward_fn)(forwarder_t *fw, zmq_msg_t *payload);

struct forwarder_t {
    void *ctx, *router, *zap;
    char endpoint[128];
    char keys[FORWARDER_KEYS][41]; /* Z85, the only keys admitted; [0] the publisher's */
    int n_keys;
    route_t routes[FORWARDER_KEYS]; /* of keys[i]'s connection, once it said hello */
    atomic_int ready;               /* connections that said hello */
    atomic_bool stop;
    forward_fn *forward;
    void *arg; /* what forward needs: workload 2's run */
    uint64_t forwarded, dropped;
};

/*  The index of an admitted key (Z85), or -1. */
static int forwarder_key(const forwarder_t *fw, const char *key)
{
    for (int i = 0; key[0] && i < fw->n_keys; i++)
        if (strcmp(key, fw->keys[i]) == 0)
            return i;
    return -1;
}

/*  ZAP (RFC 27): admits exactly the keys in fw->keys, with the key as
 *  User-Id (as caveatd's handler does). */
static void forwarder_zap(forwarder_t *fw)
{
    char frames[7][64];
    size_t sizes[7];
    int n = 0;
    int more = 1;
    while (more) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, fw->zap, 0) < 0) {
            zmq_msg_close(&part);
            return;
        }
        more = zmq_msg_more(&part);
        if (n < 7) {
            sizes[n] = zmq_msg_size(&part) < 64 ? zmq_msg_size(&part) : 63;
            memcpy(frames[n], zmq_msg_data(&part), sizes[n]);
            frames[n][sizes[n]] = '\0';
        }
        n++;
        zmq_msg_close(&part);
    }
    char key[41] = "";
    if (n == 7 && sizes[6] == 32 && strcmp(frames[5], "CURVE") == 0)
        zmq_z85_encode(key, (uint8_t *)frames[6], 32);
    bool ok = forwarder_key(fw, key) >= 0;
    zmq_send(fw->zap, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(fw->zap, frames[1], n > 1 ? sizes[1] : 0, ZMQ_SNDMORE);
    zmq_send(fw->zap, ok ? "200" : "400", 3, ZMQ_SNDMORE);
    zmq_send(fw->zap, ok ? "OK" : "no", 2, ZMQ_SNDMORE);
    zmq_send(fw->zap, ok ? key : "", ok ? 40 : 0, ZMQ_SNDMORE);
    zmq_send(fw->zap, "", 0, 0);
}

/*  Sends, blocking while the recipient's pipe is full (ROUTER_MANDATORY:
 *  back-pressure instead of a silent drop). */
static bool forwarder_send(forwarder_t *fw, const route_t *to, zmq_msg_t *payload)
{
    while (!atomic_load(&fw->stop)) {
        if (zmq_send(fw->router, to->id, to->len, ZMQ_SNDMORE) >= 0)
            return zmq_msg_send(payload, fw->router, 0) >= 0;
        if (zmq_errno() != EAGAIN)
            return false;
    }
    return false;
}

/*  Workload 1: the payload on, unchanged, to the one subscriber. */
static void forward_to_subscriber(forwarder_t *fw, zmq_msg_t *payload)
{
    if (fw->routes[1].len && forwarder_send(fw, &fw->routes[1], payload))
        fw->forwarded++;
    else
        fw->dropped++;
}

/*  A connection said hello: from now on messages for its key go to it.
 *  Clients repeat hello until all are known, so count each key once. */
static void forwarder_hello(forwarder_t *fw, int from, zmq_msg_t *routing)
{
    route_t *r = &fw->routes[from];
    bool known = r->len > 0;
    r->len = zmq_msg_size(routing) < sizeof r->id ? zmq_msg_size(routing) : sizeof r->id;
    memcpy(r->id, zmq_msg_data(routing), r->len);
    if (!known)
        atomic_fetch_add(&fw->ready, 1);
}

static bool is_hello(zmq_msg_t *payload)
{
    return zmq_msg_size(payload) == 5 && memcmp(zmq_msg_data(payload), "hello", 5) == 0;
}

/*  One message: the sender from User-Id, read per message as caveatd does;
 *  a hello registers its connection, the publisher's payload is forwarded. */
static void forwarder_message(forwarder_t *fw, zmq_msg_t *routing, zmq_msg_t *payload)
{
    const char *user = zmq_msg_gets(payload, "User-Id");
    int from = user ? forwarder_key(fw, user) : -1;
    if (from >= 0 && is_hello(payload))
        forwarder_hello(fw, from, routing);
    else if (from == 0)
        fw->forward(fw, payload);
    else
        fw->dropped++;
}

/*  Drains what is waiting: [routing id][payload] pairs. */
static void forwarder_drain(forwarder_t *fw)
{
    for (int i = 0; i < 1000; i++) {
        zmq_msg_t routing, payload;
        zmq_msg_init(&routing);
        if (zmq_msg_recv(&routing, fw->router, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&routing);
            return;
        }
        zmq_msg_init(&payload);
        if (zmq_msg_recv(&payload, fw->router, 0) >= 0)
            forwarder_message(fw, &routing, &payload);
        zmq_msg_close(&payload);
        zmq_msg_close(&routing);
    }
}

static void *forwarder_thread(void *arg)
{
    forwarder_t *fw = arg;
    pthread_setname_np(pthread_self(), "bb-forwarder");
    while (!atomic_load(&fw->stop)) {
        zmq_pollitem_t items[] = {{fw->zap, 0, ZMQ_POLLIN, 0}, {fw->router, 0, ZMQ_POLLIN, 0}};
        if (zmq_poll(items, 2, 100) <= 0)
            continue;
        if (items[0].revents & ZMQ_POLLIN)
            forwarder_zap(fw);
        if (items[1].revents & ZMQ_POLLIN)
            forwarder_drain(fw);
    }
    return NULL;
}

static void set_int(void *socket, int option, int value)
{
    zmq_setsockopt(socket, option, &value, sizeof value);
}

/*  The ZAP handler first: a CURVE server with none admits any key. */
static bool forwarder_start(forwarder_t *fw, const char *server_secret_cert)
{
    zcert_t *cert = zcert_load(server_secret_cert);
    if (!cert)
        return false;
    fw->ctx = zmq_ctx_new();
    zmq_ctx_set(fw->ctx, ZMQ_THREAD_NAME_PREFIX, FORWARDER_ZMQ);
    fw->zap = zmq_socket(fw->ctx, ZMQ_REP);
    bool ok = zmq_bind(fw->zap, "inproc://zeromq.zap.01") == 0;
    fw->router = zmq_socket(fw->ctx, ZMQ_ROUTER);
    set_int(fw->router, ZMQ_CURVE_SERVER, 1);
    zmq_setsockopt(fw->router, ZMQ_CURVE_SECRETKEY, zcert_secret_key(cert), 32);
    zmq_setsockopt(fw->router, ZMQ_ZAP_DOMAIN, "bench", 5);
    set_int(fw->router, ZMQ_ROUTER_MANDATORY, 1);
    set_int(fw->router, ZMQ_SNDHWM, 100000); /* as caveatd */
    set_int(fw->router, ZMQ_RCVHWM, 100000);
    set_int(fw->router, ZMQ_SNDTIMEO, 100);
    set_int(fw->router, ZMQ_LINGER, 0);
    size_t len = sizeof fw->endpoint;
    ok = ok && zmq_bind(fw->router, "tcp://127.0.0.1:*") == 0 &&
         zmq_getsockopt(fw->router, ZMQ_LAST_ENDPOINT, fw->endpoint, &len) == 0;
    zcert_destroy(&cert);
    return ok;
}

static void forwarder_stop(forwarder_t *fw)
{
    zmq_close(fw->router);
    zmq_close(fw->zap);
    zmq_ctx_term(fw->ctx);
}

static bool key_of(const char *cert_path, char z85[41])
{
    zcert_t *cert = zcert_load(cert_path);
    bool ok = cert != NULL;
    if (ok)
        snprintf(z85, 41, "%s", zcert_public_txt(cert));
    zcert_destroy(&cert);
    return ok;
}

typedef struct {
    flow_t flow;
    void *ctx, *publisher, *subscriber;
    zmq_msg_t payload; /* the packed report, copied per send */
    forwarder_t *fw;
} zmq_flow_t;

/*  A CURVE DEALER with an agency's key pair (the same ones caveatd uses). */
static void *curve_dealer(void *ctx, harness_t *h, const char *agency, const char *endpoint)
{
    char path[600];
    snprintf(path, sizeof path, "%s.cert_secret", agency);
    zcert_t *client = zcert_load(harness_path(h, path));
    zcert_t *server = zcert_load(harness_path(h, "broker.cert"));
    void *s = NULL;
    if (client && server) {
        s = zmq_socket(ctx, ZMQ_DEALER);
        zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, zcert_public_key(server), 32);
        zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, zcert_public_key(client), 32);
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, zcert_secret_key(client), 32);
        set_int(s, ZMQ_SNDHWM, 1000); /* as libcaveat */
        set_int(s, ZMQ_RCVHWM, 1000);
        set_int(s, ZMQ_LINGER, 0);
        set_int(s, ZMQ_RCVTIMEO, 100);
        zmq_connect(s, endpoint);
    }
    zcert_destroy(&client);
    zcert_destroy(&server);
    return s;
}

static void *zmq_publisher(void *arg)
{
    zmq_flow_t *z = arg;
    flow_t *f = &z->flow;
    f->t_start = bench_now_ns();
    while (flow_publishing(f)) {
        flow_wait_window(f, 100);
        for (int i = 0; i < 100; i++) {
            zmq_msg_t msg;
            zmq_msg_init(&msg);
            zmq_msg_copy(&msg, &z->payload);
            if (zmq_msg_send(&msg, z->publisher, 0) < 0) {
                zmq_msg_close(&msg);
                flow_fail(f, "forwarder publish", zmq_strerror(zmq_errno()));
                break;
            }
            atomic_fetch_add(&f->sent, 1);
        }
    }
    flow_publisher_done(f);
    return NULL;
}

static void *zmq_subscriber(void *arg)
{
    zmq_flow_t *z = arg;
    flow_t *f = &z->flow;
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    while (!flow_finished(f))
        if (zmq_msg_recv(&msg, z->subscriber, 0) >= 0)
            flow_received(f, 1);
    zmq_msg_close(&msg);
    return NULL;
}

/*  The subscriber says hello until the forwarder knows its routing id. */
static bool zmq_flow_connect(zmq_flow_t *z)
{
    for (int i = 0; i < 50 && atomic_load(&z->fw->ready) < 1; i++) {
        zmq_send(z->subscriber, "hello", 5, ZMQ_DONTWAIT);
        sleep_us(100000);
    }
    return atomic_load(&z->fw->ready) >= 1;
}

#define STRING(x)    #x
#define AS_STRING(x) STRING(x)

/*  The forwarder's thread and its libzmq context's I/O thread, where the
 *  CURVE work is done. */
static double forwarder_cpu(void)
{
    return threads_cpu("bb-forwarder") + threads_cpu(AS_STRING(FORWARDER_ZMQ) "/ZMQ");
}

static void run_zmq_flow(zmq_flow_t *z, path_result_t *r)
{
    double fw0 = forwarder_cpu(), self0 = bench_process_cpu(getpid());
    pthread_t pub, sub;
    flow_init(&z->flow, z->flow.opt);
    pthread_create(&sub, NULL, zmq_subscriber, z);
    pthread_create(&pub, NULL, zmq_publisher, z);
    pthread_join(pub, NULL);
    pthread_join(sub, NULL);
    r->server_cpu_s = forwarder_cpu() - fw0;
    r->clients_cpu_s = bench_process_cpu(getpid()) - self0 - r->server_cpu_s;
    flow_result(&z->flow, r);
}

static void measure_forwarder(const options_t *opt, path_result_t *r)
{
    r->name = "zero-logic CURVE forwarder";
    harness_t *h = bench_throughput_harness(r->note, sizeof r->note); /* the same keys */
    forwarder_t fw = {0};
    zmq_flow_t z = {.flow.opt = opt, .fw = &fw};
    pthread_t thread;
    if (!h)
        return;
    fw.n_keys = 2;
    fw.forward = forward_to_subscriber;
    if (!key_of(harness_path(h, "bench-publisher.cert"), fw.keys[0]) ||
        !key_of(harness_path(h, "bench-subscriber.cert"), fw.keys[1]) ||
        !forwarder_start(&fw, harness_path(h, "broker.cert_secret"))) {
        snprintf(r->note, sizeof r->note, "cannot start the forwarder: %s",
                 zmq_strerror(zmq_errno()));
        harness_destroy(&h);
        return;
    }
    pthread_create(&thread, NULL, forwarder_thread, &fw);
    z.ctx = zmq_ctx_new();
    z.publisher = curve_dealer(z.ctx, h, "bench-publisher", fw.endpoint);
    z.subscriber = curve_dealer(z.ctx, h, "bench-subscriber", fw.endpoint);
    Caveat__Report *report = make_report("vulnerable_individual", "hull");
    zmq_msg_init_size(&z.payload, caveat__report__get_packed_size(report));
    caveat__report__pack(report, zmq_msg_data(&z.payload));
    caveat__report__free_unpacked(report, NULL);
    if (!z.publisher || !z.subscriber || !zmq_flow_connect(&z))
        snprintf(r->note, sizeof r->note, "the subscriber could not reach the forwarder");
    else
        run_zmq_flow(&z, r);
    zmq_msg_close(&z.payload);
    zmq_close(z.publisher);
    zmq_close(z.subscriber);
    zmq_ctx_term(z.ctx);
    atomic_store(&fw.stop, true);
    pthread_join(thread, NULL);
    forwarder_stop(&fw);
    harness_destroy(&h);
}

/* ------------------------------------------------------------------------ */
/*  1c: nats-server with TLS and per-user subject permissions.              */

#ifdef HAVE_LIBNATS

/*  TLS, and two users that may each do one thing on one subject. */
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
            "authorization {\n  users: [\n"
            "    {user: publisher, password: pub-secret, permissions: "
            "{publish: {allow: [\"" NATS_SUBJECT "\"]}, subscribe: {deny: [\">\"]}}}\n"
            "    {user: subscriber, password: sub-secret, permissions: "
            "{publish: {deny: [\">\"]}, subscribe: {allow: [\"" NATS_SUBJECT "\"]}}}\n"
            "  ]\n}\n",
            port, n->dir, n->dir);
    return fclose(f) == 0;
}

static void nats_server_stop(nats_server_t *n)
{
    if (n->pid > 0) {
        kill(n->pid, SIGTERM);
        waitpid(n->pid, NULL, 0);
    }
    char command[128];
    snprintf(command, sizeof command, "rm -rf %s", n->dir);
    if (system(command) != 0)
        fprintf(stderr, "broker_bench: could not remove %s\n", n->dir);
}

/*  A TLS connection that checks the server's certificate and name. */
static natsConnection *nats_connect(const nats_server_t *n, const char *user, const char *password,
                                    int wait_ms)
{
    char ca[128];
    snprintf(ca, sizeof ca, "%s/server.pem", n->dir);
    natsConnection *nc = NULL;
    for (int waited = 0; !nc && waited <= wait_ms; waited += 50) {
        natsOptions *o = NULL;
        natsStatus s = natsOptions_Create(&o);
        s = s ? s : natsOptions_SetURL(o, n->url);
        s = s ? s : natsOptions_SetSecure(o, true);
        s = s ? s : natsOptions_LoadCATrustedCertificates(o, ca);
        s = s ? s : natsOptions_SetExpectedHostname(o, "localhost");
        s = s ? s : natsOptions_SetUserInfo(o, user, password);
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
    flow_t flow;
    natsConnection *publisher, *subscriber;
    uint8_t *payload;
    size_t payload_len;
} nats_flow_t;

static void on_nats_message(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    natsMsg_Destroy(msg);
    flow_received(&((nats_flow_t *)closure)->flow, 1);
}

static void *nats_publisher(void *arg)
{
    nats_flow_t *n = arg;
    flow_t *f = &n->flow;
    f->t_start = bench_now_ns();
    while (flow_publishing(f)) {
        flow_wait_window(f, 100);
        for (int i = 0; i < 100; i++) {
            natsStatus s =
                natsConnection_Publish(n->publisher, NATS_SUBJECT, n->payload, (int)n->payload_len);
            if (s != NATS_OK) {
                flow_fail(f, "nats publish", natsStatus_GetText(s));
                break;
            }
            atomic_fetch_add(&f->sent, 1);
        }
    }
    natsConnection_Flush(n->publisher);
    flow_publisher_done(f);
    return NULL;
}

static void run_nats_flow(nats_flow_t *n, pid_t server, path_result_t *r)
{
    double cpu0 = bench_process_cpu(server), self0 = bench_process_cpu(getpid());
    flow_init(&n->flow, n->flow.opt);
    pthread_t pub;
    pthread_create(&pub, NULL, nats_publisher, n);
    pthread_join(pub, NULL);
    while (!flow_finished(&n->flow))
        sleep_us(1000);
    r->server_cpu_s = bench_process_cpu(server) - cpu0;
    r->clients_cpu_s = bench_process_cpu(getpid()) - self0;
    flow_result(&n->flow, r);
}

static void nats_session(const options_t *opt, nats_server_t *srv, path_result_t *r)
{
    nats_flow_t n = {.flow.opt = opt};
    natsSubscription *sub = NULL;
    n.subscriber = nats_connect(srv, "subscriber", "sub-secret", 5000);
    n.publisher = n.subscriber ? nats_connect(srv, "publisher", "pub-secret", 0) : NULL;
    natsStatus s = n.publisher ? natsConnection_Subscribe(&sub, n.subscriber, NATS_SUBJECT,
                                                          on_nats_message, &n)
                               : NATS_CONNECTION_CLOSED;
    s = s ? s : natsSubscription_SetPendingLimits(sub, -1, -1);
    s = s ? s : natsConnection_Flush(n.subscriber); /* the subscription is in place */
    Caveat__Report *report = make_report("vulnerable_individual", "hull");
    n.payload_len = caveat__report__get_packed_size(report);
    n.payload = malloc(n.payload_len);
    caveat__report__pack(report, n.payload);
    caveat__report__free_unpacked(report, NULL);
    if (s != NATS_OK)
        snprintf(r->note, sizeof r->note, "nats: cannot connect or subscribe (%s); see %s/nats.log",
                 natsStatus_GetText(s), srv->dir);
    else
        run_nats_flow(&n, srv->pid, r);
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(n.publisher);
    natsConnection_Destroy(n.subscriber);
    free(n.payload);
}

static void measure_nats(const options_t *opt, path_result_t *r)
{
    r->name = "nats-server (TLS, per-user perms)";
    char *program = bench_find_program("nats-server"), *openssl = bench_find_program("openssl");
    nats_server_t srv = {.pid = 0};
    snprintf(srv.dir, sizeof srv.dir, "/tmp/brokerbench-nats-XXXXXX");
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
        nats_session(opt, &srv, r);
    if (made)
        nats_server_stop(&srv);
    free(program);
    free(openssl);
}

#else

static void measure_nats(const options_t *opt, path_result_t *r)
{
    (void)opt;
    r->name = "nats-server (TLS, per-user perms)";
    char *program = bench_find_program("nats-server");
    snprintf(r->note, sizeof r->note, "%s",
             program ? "nats-server: built without libnats (libnats-dev), skipped"
                     : "nats-server: not installed, skipped");
    free(program);
}

#endif

/* ------------------------------------------------------------------------ */
/*  1d: the store alone, in this process, no network.                       */

typedef struct {
    cv_store_t *store;
    int64_t queue;          /* the subscriber's direct queue, looked up once as caveatd caches it */
    Caveat__Report *report; /* workload 1's report, as caveatd has it after acceptance */
    cv_stored_report_t stored;
    uint8_t *body; /* the packed report */
    size_t body_len;
    uint64_t committed;
    cv_error_t err;
} store_run_t;

/*  The report as caveatd holds it once accepted: the sender as originator
 *  (set by the broker, never taken from the client). */
static bool store_prepare(store_run_t *s)
{
    s->report = make_report("vulnerable_individual", "hull");
    replace(&s->report->originator, "bench-publisher");
    s->stored.originator = s->report->originator;
    s->stored.category = s->report->category;
    /* room for the fresh ids, longer than the template's */
    s->body_len = caveat__report__get_packed_size(s->report) + 64;
    s->body = malloc(s->body_len);
    return s->body && cv_timestamp_parse(s->report->created, &s->stored.created);
}

/*  One report as caveatd stores an accepted one: a fresh id (the store's
 *  index of ids is unique), packed, put, then routed to its one queue. */
static bool store_one(store_run_t *s)
{
    char *id = cv_report_id_new();
    if (!id) {
        snprintf(s->err.msg, sizeof s->err.msg, "no report id");
        return false;
    }
    free(s->report->id);
    s->report->id = id;
    s->stored.id = id;
    s->stored.accepted = zclock_time();
    size_t len = caveat__report__get_packed_size(s->report);
    if (len > s->body_len) {
        snprintf(s->err.msg, sizeof s->err.msg, "report grew to %zu bytes", len);
        return false;
    }
    caveat__report__pack(s->report, s->body);
    int64_t rowid = 0;
    cv_put_t put = cv_store_put_report(s->store, &s->stored, s->body, len, &rowid, &s->err);
    if (put != CV_PUT_NEW) {
        if (put != CV_PUT_FAILED)
            snprintf(s->err.msg, sizeof s->err.msg, "report id %s was stored before", id);
        return false;
    }
    return cv_store_route(s->store, rowid, 0, &s->queue, 1, &s->err);
}

/*  One publish call's worth in one transaction, as a caveatd turn commits
 *  a drained batch; then the checkpoint caveatd would ask for. */
static bool store_batch(store_run_t *s, int n)
{
    bool ok = cv_store_begin(s->store, &s->err);
    for (int i = 0; ok && i < n; i++)
        ok = store_one(s);
    ok = ok && cv_store_commit(s->store, &s->err);
    if (!ok) {
        cv_store_rollback(s->store);
        return false;
    }
    s->committed += (uint64_t)n;
    return cv_store_checkpoint_when_due(s->store, &s->err); /* as caveatd does */
}

/*  Nothing else of the benchmark runs now: this process's CPU is the
 *  store's, its checkpointer thread included. */
static void run_store(store_run_t *s, const options_t *opt, path_result_t *r)
{
    double cpu0 = bench_process_cpu(getpid());
    uint64_t t0 = bench_now_ns(), end = t0 + (uint64_t)(opt->seconds * 1e9);
    bool ok = true;
    while (ok && bench_now_ns() < end)
        ok = store_batch(s, opt->batch);
    uint64_t t1 = bench_now_ns();
    r->server_cpu_s = bench_process_cpu(getpid()) - cpu0;
    r->ran = true;
    r->published = r->received = s->committed;
    r->publish_s = r->end_to_end_s = seconds_between(t0, t1);
    if (!ok)
        snprintf(r->note, sizeof r->note, "%.300s", s->err.msg);
}

/*  The subscriber's queue is made before the clock starts: caveatd makes
 *  a queue once, at the first report routed to it, and then caches its id. */
static bool store_open(store_run_t *s, const char *dir)
{
    s->store = cv_store_open(dir, CV_SYNC_NORMAL, &s->err);
    if (!s->store || !cv_store_begin(s->store, &s->err))
        return false;
    s->queue = cv_store_queue(s->store, "bench-subscriber", "", 0, &s->err);
    return s->queue >= 0 && cv_store_commit(s->store, &s->err);
}

static void measure_store(const options_t *opt, path_result_t *r)
{
    r->name = "store alone (SQLite, no fsync)";
    r->in_process = true;
    char dir[] = "/tmp/brokerbench-store-XXXXXX";
    store_run_t s = {.queue = -1};
    bool made = false;
    if (sodium_init() < 0) /* cv_report_id_new draws from libsodium */
        snprintf(r->note, sizeof r->note, "sodium_init failed");
    else if (!(made = mkdtemp(dir) != NULL))
        snprintf(r->note, sizeof r->note, "cannot make a temporary directory");
    else if (!store_open(&s, dir))
        snprintf(r->note, sizeof r->note, "%.300s", s.err.msg);
    else if (!store_prepare(&s))
        snprintf(r->note, sizeof r->note, "cannot prepare the report");
    else
        run_store(&s, opt, r);
    cv_store_close(&s.store);
    if (s.report)
        caveat__report__free_unpacked(s.report, NULL);
    free(s.body);
    if (made)
        bench_remove_tree(dir);
}

/* ------------------------------------------------------------------------ */
/*  Workload 2: fan-out at a fixed offered rate.                            */

static const struct {
    const char *type;
    int count;    /* subscriber agencies of the type */
    bool by_area; /* agencies serve one area each (else "*") */
} fanout_types[] = {
    {"police", 8, true},     {"ctio", 4, false},  {"local_authority", 12, true},
    {"education", 14, true}, {"health", 7, true}, {"offender_management", 5, false},
};
#define N_FANOUT_TYPES 6

static const char *const fanout_categories[] = {"vulnerable_individual", "radicalisation_concern",
                                                "community_tension"};
static const char *const fanout_areas[] = {"hull", "grimsby"};
#define N_VARIANTS 6 /* category x area */

/*  One rule per recipient type, each with its own view; every one shares
 *  `summary`, where the send times travel. */
static const char fanout_rules[] =
    "rules:\n"
    "  - {name: police-to-police, categories: [vulnerable_individual, radicalisation_concern,\n"
    "     community_tension], from_types: [police], to_types: [police], same_area: true,\n"
    "     fields: {\"*\": share}}\n"
    "  - {name: ctio-feed, categories: [radicalisation_concern, community_tension],\n"
    "     to_types: [ctio], fields: {\"*\": share, source.notes: deny}}\n"
    "  - {name: safeguarding-referral, categories: [vulnerable_individual, "
    "radicalisation_concern],\n"
    "     to_types: [local_authority], same_area: true, max_level: OFFICIAL-SENSITIVE,\n"
    "     fields: {summary: share, subjects.name: share, subjects.date_of_birth: {mask: year},\n"
    "              subjects.postcode: {mask: postcode_district},\n"
    "              subjects.vulnerability_factors: share, narrative: share}}\n"
    "  - {name: schools-tension, categories: [community_tension, vulnerable_individual],\n"
    "     to_types: [education], same_area: true,\n"
    "     fields: {summary: share, area: share, tension: share, subjects.name: {mask: "
    "initials}}}\n"
    "  - {name: health-referral, categories: [vulnerable_individual, radicalisation_concern],\n"
    "     to_types: [health], same_area: true,\n"
    "     fields: {summary: share, subjects.name: share, subjects.date_of_birth: share,\n"
    "              subjects.identifiers: pseudonymise, location.latitude: {mask: round_1km},\n"
    "              location.longitude: {mask: round_1km}}}\n"
    "  - {name: offender-management, categories: [radicalisation_concern, community_tension],\n"
    "     to_types: [offender_management],\n"
    "     fields: {summary: share, subjects.name: pseudonymise, indicators: share}}\n";
#define N_FANOUT_RULES 6

typedef struct fanout_t fanout_t;

typedef struct {
    fanout_t *run;
    char id[48];
    int type;
    int index; /* in the policy */
    cv_client_t *client;
    void *dealer; /* instead of client, through the forwarder */
    pthread_t thread;
    uint64_t expected, received, unexpected, view_bytes;
    uint32_t *sched_us, *sent_us; /* latencies */
} subscriber_t;

struct fanout_t {
    const options_t *opt;
    harness_t *harness;
    cv_policy_t *policy; /* the same text, for the expected deliveries */
    subscriber_t subs[N_SUBSCRIBERS];
    bool delivers[N_VARIANTS][N_SUBSCRIBERS];
    uint64_t reports;
    uint64_t deadline;
    atomic_bool failed;
    _Atomic uint64_t t_last;
    uint32_t *call_us; /* publish call durations */
    uint64_t calls;
    cv_decision_t *decision; /* the forwarder's, reused for every report */
};

static bool add_fanout_agency(text_t *t, harness_t *h, const char *id, const char *type,
                              const char *areas)
{
    char key[41];
    if (!bench_make_key(h, id, key))
        return false;
    text_add(t,
             "  %s: {organisation: org-%s, type: %s, clearance: SECRET, areas: %s, key: \"%s\"}\n",
             id, id, type, areas, key);
    return true;
}

static char *fanout_policy(fanout_t *run)
{
    text_t t = {0};
    text_add(&t, "protocol: brokerbench-fanout\nversion: 1\n"
                 "description: broker_bench workload 2, generated\n"
                 "levels: [OFFICIAL, OFFICIAL-SENSITIVE, SECRET]\n"
                 "administrators: [bench-publisher] # it reads the broker's stats\n"
                 "agencies:\n");
    char broker_key[41];
    bool ok = bench_make_key(run->harness, "broker", broker_key) &&
              add_fanout_agency(&t, run->harness, "bench-publisher", "police", "[\"*\"]");
    int n = 0;
    for (int k = 0; k < N_FANOUT_TYPES; k++)
        for (int i = 0; i < fanout_types[k].count && n < N_SUBSCRIBERS; i++, n++) {
            subscriber_t *s = &run->subs[n];
            snprintf(s->id, sizeof s->id, "%s-%02d", fanout_types[k].type, i);
            s->type = k;
            s->run = run;
            char areas[64];
            snprintf(areas, sizeof areas, "[\"%s\"]",
                     fanout_types[k].by_area ? fanout_areas[i % 2] : "*");
            ok = ok && add_fanout_agency(&t, run->harness, s->id, fanout_types[k].type, areas);
        }
    text_add(&t, "%s", fanout_rules);
    if (!ok) {
        free(t.data);
        return NULL;
    }
    return t.data;
}

/*  Which subscribers each report variant goes to, decided by the engine
 *  on the same policy; and so what each subscriber should receive. */
static double expect_deliveries(fanout_t *run, const char *text)
{
    cv_error_t err = {0};
    run->policy = cv_policy_load_buffer(text, strlen(text), "<fanout>", NULL, &err);
    if (!run->policy) {
        fprintf(stderr, "broker_bench: fan-out policy refused: %s\n", err.msg);
        return -1;
    }
    cv_decision_t *decision = cv_decision_new();
    uint64_t total = 0;
    for (int v = 0; v < N_VARIANTS; v++) {
        Caveat__Report *r = make_report(fanout_categories[v % 3], fanout_areas[v / 3]);
        replace(&r->originator, "bench-publisher");
        for (int i = 0; i < N_SUBSCRIBERS; i++) {
            int a = cv_policy_agency_find(run->policy, run->subs[i].id);
            run->subs[i].index = a;
            run->delivers[v][i] = cv_policy_decide(run->policy, r, a, NULL, decision);
            total += run->delivers[v][i];
        }
        caveat__report__free_unpacked(r, NULL);
    }
    cv_decision_destroy(&decision);
    for (uint64_t k = 0; k < run->reports; k++)
        for (int i = 0; i < N_SUBSCRIBERS; i++)
            run->subs[i].expected += run->delivers[k % N_VARIANTS][i];
    return (double)total / N_VARIANTS;
}

/*  Records one delivered report's latencies from the times in its summary. */
static void record_report(subscriber_t *s, const Caveat__Report *report, uint64_t t)
{
    uint64_t due = 0, sent = 0;
    const char *summary = report ? report->summary : NULL;
    if (!summary || sscanf(summary, "due=%" SCNu64 " sent=%" SCNu64, &due, &sent) != 2 ||
        s->received >= s->expected) {
        s->unexpected++;
        return;
    }
    s->sched_us[s->received] = (uint32_t)((t - due) / 1000u);
    s->sent_us[s->received] = (uint32_t)((t - sent) / 1000u);
    s->view_bytes += caveat__report__get_packed_size(report);
    s->received++;
}

/*  How long a subscriber holds an acknowledgement back once the stream
 *  pauses: a delivery at a time, each acknowledged alone, would be an
 *  acknowledgement a delivery for the broker and both I/O threads to carry;
 *  a credit of 1000 leaves ample room for holding them. */
#define ACK_DELAY_NS (20 * 1000000ull)

/*  The receive timeout: until the held acknowledgement is due, or 50 ms. */
static int receive_timeout(uint64_t highest, uint64_t acked, uint64_t last_ack)
{
    if (highest <= acked)
        return 50;
    uint64_t now = bench_now_ns(), due = last_ack + ACK_DELAY_NS;
    return now >= due ? 0 : (int)((due - now) / 1000000u) + 1;
}

/*  Receives until it has what the policy sends it; acknowledges
 *  cumulatively every ACK_EVERY deliveries, or when the stream pauses and
 *  ACK_DELAY_NS have passed since the last acknowledgement. */
static void *fanout_subscriber(void *arg)
{
    subscriber_t *s = arg;
    fanout_t *run = s->run;
    uint64_t highest = 0, acked = 0, last_ack = bench_now_ns();
    while (s->received < s->expected && bench_now_ns() < run->deadline &&
           !atomic_load(&run->failed)) {
        cv_error_t err = {0};
        const cv_delivery_t *d =
            cv_client_receive(s->client, receive_timeout(highest, acked, last_ack), &err);
        if (d) {
            uint64_t t = bench_now_ns();
            highest = d->seq;
            record_report(s, d->report, t);
            atomic_store(&run->t_last, t);
        } else if (err.msg[0]) {
            fprintf(stderr, "broker_bench: %s: %s\n", s->id, err.msg);
            atomic_store(&run->failed, true);
        }
        bool due = !d && bench_now_ns() >= last_ack + ACK_DELAY_NS;
        if (highest > acked && (due || highest - acked >= ACK_EVERY)) {
            if (!cv_client_ack(s->client, highest, &err))
                fprintf(stderr, "broker_bench: %s: ack: %s\n", s->id, err.msg);
            acked = highest;
            last_ack = bench_now_ns();
        }
    }
    if (highest > acked)
        cv_client_ack(s->client, highest, NULL);
    return NULL;
}

/*  A subscriber stops once it has what the policy releases to it; anything
 *  more that arrives within 200 ms after is a delivery the policy did not
 *  release, counted as unexpected. */
static void count_extra_deliveries(fanout_t *run)
{
    sleep_us(200000);
    for (int i = 0; i < N_SUBSCRIBERS; i++) {
        while (cv_client_receive(run->subs[i].client, 0, NULL))
            run->subs[i].unexpected++;
    }
}

/*  A publish in flight: its reports must stay as sent until it finishes. */
typedef struct {
    Caveat__Report *pool[FANOUT_MAX_BATCH];
    cv_publish_result_t results[FANOUT_MAX_BATCH];
    size_t n;
    int64_t ticket;
} fan_slot_t;

static void fanout_finish(fanout_t *run, cv_client_t *publisher, fan_slot_t *slot)
{
    cv_error_t err = {0};
    int refused = cv_client_publish_finish(publisher, slot->ticket, PUBLISH_TIMEOUT_MS, &err);
    if (refused != 0) {
        fprintf(stderr, "broker_bench: fan-out publish: %s\n",
                publish_failure(refused, &err, slot->results, slot->n));
        atomic_store(&run->failed, true);
    }
    cv_publish_results_clear(slot->results, slot->n);
}

/*  The publisher's reports, one pool per publish in flight, made before
 *  the schedule's start: the publisher's own set-up is not the broker's
 *  latency (16 pools of 500 reports take most of a second). */
static fan_slot_t *fanout_slots_new(int in_flight)
{
    fan_slot_t *slots = calloc((size_t)in_flight, sizeof *slots);
    for (int s = 0; slots && s < in_flight; s++)
        for (int i = 0; i < FANOUT_MAX_BATCH; i++)
            slots[s].pool[i] = make_report(fanout_categories[0], fanout_areas[0]);
    return slots;
}

static void fanout_slots_destroy(fan_slot_t **slots_p, int in_flight)
{
    for (int s = 0; *slots_p && s < in_flight; s++)
        for (int i = 0; i < FANOUT_MAX_BATCH; i++)
            caveat__report__free_unpacked((*slots_p)[s].pool[i], NULL);
    free(*slots_p);
    *slots_p = NULL;
}

/*  Report k is due at t0 + k/rate. Each publish carries every report due
 *  by now (at least one), stamped with its due time and the time it is
 *  sent. Publishes are pipelined, as a publisher that must keep to a
 *  schedule would: started at once (libcaveat's cv_client_publish_start),
 *  finished once acknowledged, at most --in-flight at a time; a slow
 *  acknowledgement still shows up in the scheduled-time latency once the
 *  pipeline is full, rather than silently lowering the offered rate. */
static void fanout_publish(fanout_t *run, cv_client_t *publisher, fan_slot_t *slots, uint64_t t0)
{
    uint64_t interval = 1000000000u / (uint64_t)run->opt->rate, started = 0, finished = 0;
    uint64_t in_flight = (uint64_t)run->opt->in_flight;
    for (uint64_t k = 0; k < run->reports && !atomic_load(&run->failed);) {
        bench_sleep_until(t0 + k * interval);
        if (started - finished == in_flight) /* the pipeline is full: wait */
            fanout_finish(run, publisher, &slots[finished++ % in_flight]);
        fan_slot_t *slot = &slots[started % in_flight];
        uint64_t t = bench_now_ns(), due = (t - t0) / interval + 1;
        uint64_t n = (due < run->reports ? due : run->reports) - k;
        n = n > FANOUT_MAX_BATCH ? FANOUT_MAX_BATCH : n < 1 ? 1 : n;
        for (uint64_t i = 0; i < n; i++) {
            Caveat__Report *r = slot->pool[i];
            uint64_t v = (k + i) % N_VARIANTS;
            replace(&r->category, fanout_categories[v % 3]);
            replace(&r->area, fanout_areas[v / 3]);
            stamp(r, "fanout", k + i, t0 + (k + i) * interval, t);
        }
        cv_error_t err = {0};
        slot->n = (size_t)n;
        slot->ticket = cv_client_publish_start(publisher, (const Caveat__Report *const *)slot->pool,
                                               slot->n, slot->results, &err);
        run->call_us[run->calls++] = (uint32_t)((bench_now_ns() - t) / 1000u);
        if (slot->ticket < 0) {
            fprintf(stderr, "broker_bench: fan-out publish: %s\n", err.msg);
            atomic_store(&run->failed, true);
            cv_publish_results_clear(slot->results, slot->n);
            break;
        }
        started++;
        k += n;
        while (finished < started &&
               cv_client_publish_done(publisher, slots[finished % in_flight].ticket))
            fanout_finish(run, publisher, &slots[finished++ % in_flight]);
    }
    while (finished < started)
        fanout_finish(run, publisher, &slots[finished++ % in_flight]);
}

static bool fanout_connect(fanout_t *run, cv_client_t **publisher, char *note, size_t size)
{
    cv_error_t err = {0};
    for (int i = 0; i < N_SUBSCRIBERS; i++) {
        subscriber_t *s = &run->subs[i];
        s->client = harness_client(run->harness, s->id, NULL, SUB_CREDIT, &err);
        if (!s->client) {
            snprintf(note, size, "%s: %.250s", s->id, err.msg);
            return false;
        }
    }
    *publisher = harness_client(run->harness, "bench-publisher", NULL, 0, &err);
    if (!*publisher)
        snprintf(note, size, "bench-publisher: %.250s", err.msg);
    return *publisher != NULL;
}

/*  Merges the subscribers' latencies and sorts them. */
static uint32_t *merged(const fanout_t *run, bool scheduled, uint64_t *n)
{
    *n = 0;
    for (int i = 0; i < N_SUBSCRIBERS; i++)
        *n += run->subs[i].received;
    uint32_t *all = malloc((*n + 1) * sizeof *all), *p = all;

    for (int i = 0; i < N_SUBSCRIBERS; i++) {
        const subscriber_t *s = &run->subs[i];
        memcpy(p, scheduled ? s->sched_us : s->sent_us, s->received * sizeof *p);
        p += s->received;
    }
    qsort(all, *n, sizeof *all, cmp_u32);
    return all;
}

static void fanout_views(const fanout_t *run, fanout_result_t *r)
{
    text_t t = {0};
    for (int k = 0; k < N_FANOUT_TYPES; k++) {
        uint64_t bytes = 0, count = 0;
        for (int i = 0; i < N_SUBSCRIBERS; i++)
            if (run->subs[i].type == k) {
                bytes += run->subs[i].view_bytes;
                count += run->subs[i].received;
            }
        text_add(&t, "%s%s %.0f B", k ? ", " : "", fanout_types[k].type,
                 count ? (double)bytes / (double)count : 0.0);
    }
    snprintf(r->views, sizeof r->views, "%s", t.data);
    free(t.data);
}

static void fanout_figures(fanout_t *run, uint64_t t0, uint64_t t_pub_end, fanout_result_t *r)
{
    r->ran = true;
    r->reports = run->reports;
    r->publish_s = seconds_between(t0, t_pub_end);
    r->deliver_s = seconds_between(t0, atomic_load(&run->t_last));
    for (int i = 0; i < N_SUBSCRIBERS; i++) {
        r->expected += run->subs[i].expected;
        r->delivered += run->subs[i].received;
        r->unexpected += run->subs[i].unexpected;
    }
    uint64_t n;
    uint32_t *all = merged(run, true, &n);
    r->sched_p50 = quantile_ms(all, n, 0.50);
    r->sched_p99 = quantile_ms(all, n, 0.99);
    r->sched_max = quantile_ms(all, n, 1.0);
    free(all);
    all = merged(run, false, &n);
    r->sent_p50 = quantile_ms(all, n, 0.50);
    r->sent_p99 = quantile_ms(all, n, 0.99);
    r->sent_max = quantile_ms(all, n, 1.0);
    free(all);
    qsort(run->call_us, run->calls, sizeof *run->call_us, cmp_u32);
    r->calls = run->calls;
    r->call_p50_ms = quantile_ms(run->call_us, run->calls, 0.50);
    r->call_p99_ms = quantile_ms(run->call_us, run->calls, 0.99);
    fanout_views(run, r);
}

/*  The WAL's sync stalls between two reads of caveatd's stats, ns apart. */
static void fanout_stalls(fanout_result_t *r, const char *before, const char *after, uint64_t ns)
{
    double stalls0 = stat_in(before, "wal_sync_stalls"),
           stall0 = stat_in(before, "wal_sync_stall_us");
    double stalls = stat_in(after, "wal_sync_stalls"), stall = stat_in(after, "wal_sync_stall_us");
    r->stats = stall >= 0 && stall0 >= 0 && stalls >= 0 && stalls0 >= 0;
    r->stalls = stalls - stalls0;
    r->stall_share = (stall - stall0) * 1e3 / (double)ns;
}

static void fanout_run(fanout_t *run, cv_client_t *publisher, fanout_result_t *r)
{
    pid_t pid = harness_pid(run->harness);
    fan_slot_t *slots = fanout_slots_new(run->opt->in_flight);
    if (!slots) {
        atomic_store(&run->failed, true);
        return;
    }
    uint64_t t0 = bench_now_ns() + 100000000u; /* 100 ms for the threads to start */
    run->deadline = t0 + (uint64_t)((run->opt->seconds + DRAIN_LIMIT_S) * 1e9);
    for (int i = 0; i < N_SUBSCRIBERS; i++)
        pthread_create(&run->subs[i].thread, NULL, fanout_subscriber, &run->subs[i]);
    char *before = broker_stats(publisher);
    uint64_t stats0 = bench_now_ns();
    double cpu0 = bench_process_cpu(pid), self0 = bench_process_cpu(getpid());
    fanout_publish(run, publisher, slots, t0);
    fanout_slots_destroy(&slots, run->opt->in_flight);
    uint64_t t_pub_end = bench_now_ns();
    for (int i = 0; i < N_SUBSCRIBERS; i++)
        pthread_join(run->subs[i].thread, NULL);
    r->server_cpu_s = bench_process_cpu(pid) - cpu0;
    count_extra_deliveries(run);
    r->clients_cpu_s = bench_process_cpu(getpid()) - self0;
    char *after = broker_stats(publisher);
    fanout_stalls(r, before, after, bench_now_ns() - stats0);
    free(before);
    free(after);
    r->published = run->reports;
    fanout_figures(run, t0, t_pub_end, r);
}

static void fanout_cleanup(fanout_t *run)
{
    for (int i = 0; i < N_SUBSCRIBERS; i++) {
        cv_client_destroy(&run->subs[i].client);
        free(run->subs[i].sched_us);
        free(run->subs[i].sent_us);
    }
    cv_policy_destroy(&run->policy);
    cv_decision_destroy(&run->decision);
    free(run->call_us);
    harness_destroy(&run->harness);
}

/*  Room for every latency a subscriber should record. */
static bool fanout_latencies(fanout_t *run)
{
    bool ok = run->call_us != NULL;
    for (int i = 0; i < N_SUBSCRIBERS; i++) {
        subscriber_t *s = &run->subs[i];
        s->sched_us = calloc(s->expected + 1, sizeof *s->sched_us);
        s->sent_us = calloc(s->expected + 1, sizeof *s->sent_us);
        ok = ok && s->sched_us && s->sent_us;
    }
    return ok;
}

/*  What every fan-out phase shares: a fresh harness with the generated
 *  policy's keys, and what each subscriber should receive. The policy
 *  text, or NULL with r->note set. */
static char *fanout_prepare(fanout_t *run, const options_t *opt, fanout_result_t *r)
{
    run->opt = opt;
    run->reports = (uint64_t)(opt->rate * opt->seconds);
    run->call_us = calloc(run->reports + 1, sizeof *run->call_us);
    run->harness = harness_new();
    r->agencies = N_SUBSCRIBERS + 1;
    r->rules = N_FANOUT_RULES;
    char *text = run->harness ? fanout_policy(run) : NULL;
    if (!text)
        snprintf(r->note, sizeof r->note, "cannot generate the policy and its keys");
    else if ((r->recipients_per_report = expect_deliveries(run, text)) < 0)
        snprintf(r->note, sizeof r->note, "the generated policy was refused");
    else if (!fanout_latencies(run))
        snprintf(r->note, sizeof r->note, "out of memory");
    else
        return text;
    free(text);
    return NULL;
}

static void measure_fanout(const options_t *opt, const char *sync, bool audit, fanout_result_t *r)
{
    r->label = !audit                      ? "--sync full, no audit log"
               : strcmp(sync, "full") == 0 ? "--sync full"
                                           : "--sync normal";
    fanout_t *run = calloc(1, sizeof *run);
    char *text = fanout_prepare(run, opt, r);
    cv_client_t *publisher = NULL;
    if (text) {
        harness_write_policy(run->harness, text);
        if (!bench_start_broker_audit(run->harness, sync, audit))
            snprintf(r->note, sizeof r->note, "caveatd did not start");
        else if (fanout_connect(run, &publisher, r->note, sizeof r->note))
            fanout_run(run, publisher, r);
    }
    if (r->ran && atomic_load(&run->failed))
        snprintf(r->note, sizeof r->note, "a client failed (see above)");
    if (r->note[0] && run->harness)
        show_broker_log(run->harness);
    cv_client_destroy(&publisher);
    free(text);
    fanout_cleanup(run);
    free(run);
}

/* ------------------------------------------------------------------------ */
/*  Workload 2 through the zero-logic forwarder: the transport's floor.     */
/*  The same policy, keys, schedule, reports and latency measurement as     */
/*  through caveatd, with nothing in between but CURVE, TCP and a ROUTER:   */
/*  no store, acknowledgements, credit or redaction. The forwarder only     */
/*  decides recipients (as caveatd must) and copies each report to them.    */

/*  The forwarder's side of a report from the publisher: its recipients,
 *  decided once with the engine on the generated policy (the originator set
 *  from the sender, as caveatd sets it), each sent the whole message. */
static void forward_fanout(forwarder_t *fw, zmq_msg_t *payload)
{
    fanout_t *run = fw->arg;
    Caveat__Report *r = caveat__report__unpack(NULL, zmq_msg_size(payload), zmq_msg_data(payload));
    if (!r) {
        fw->dropped++;
        return;
    }
    replace(&r->originator, "bench-publisher"); /* keys[0] */
    for (int i = 0; i < N_SUBSCRIBERS; i++) {
        if (!cv_policy_decide(run->policy, r, run->subs[i].index, NULL, run->decision))
            continue;
        zmq_msg_t copy; /* shares the payload's buffer: no byte is copied */
        zmq_msg_init(&copy);
        zmq_msg_copy(&copy, payload);
        if (fw->routes[i + 1].len && forwarder_send(fw, &fw->routes[i + 1], &copy))
            fw->forwarded++;
        else
            fw->dropped++;
        zmq_msg_close(&copy);
    }
    caveat__report__free_unpacked(r, NULL);
}

/*  The forwarder phase's sockets. Every client socket shares one libzmq
 *  context, as libcaveat's clients share czmq's; the forwarder has its own,
 *  as caveatd has its own process. */
typedef struct {
    forwarder_t fw;
    pthread_t thread;
    bool started;
    void *ctx, *publisher;
} fanout_forwarder_t;

/*  Admits exactly the publisher's and the 50 subscribers' keys, as made for
 *  the generated policy; subscriber i is keys[i + 1]. */
static bool fanfwd_start(fanout_forwarder_t *ff, fanout_t *run)
{
    forwarder_t *fw = &ff->fw;
    harness_t *h = run->harness;
    bool ok = key_of(harness_path(h, "bench-publisher.cert"), fw->keys[0]);
    for (int i = 0; ok && i < N_SUBSCRIBERS; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s.cert", run->subs[i].id);
        ok = key_of(harness_path(h, name), fw->keys[i + 1]);
    }
    fw->n_keys = FORWARDER_KEYS;
    fw->forward = forward_fanout;
    fw->arg = run;
    run->decision = cv_decision_new();
    ok = ok && run->decision && forwarder_start(fw, harness_path(h, "broker.cert_secret"));
    ff->started = ok && pthread_create(&ff->thread, NULL, forwarder_thread, fw) == 0;
    return ff->started;
}

/*  Every client says hello until the forwarder knows all 51 connections, so
 *  no CURVE handshake falls inside the schedule. */
static bool fanfwd_hello(fanout_forwarder_t *ff, fanout_t *run)
{
    for (int i = 0; i < 50 && atomic_load(&ff->fw.ready) < FORWARDER_KEYS; i++) {
        zmq_send(ff->publisher, "hello", 5, ZMQ_DONTWAIT);
        for (int k = 0; k < N_SUBSCRIBERS; k++)
            zmq_send(run->subs[k].dealer, "hello", 5, ZMQ_DONTWAIT);
        sleep_us(100000);
    }
    return atomic_load(&ff->fw.ready) == FORWARDER_KEYS;
}

static bool fanfwd_connect(fanout_forwarder_t *ff, fanout_t *run, char *note, size_t size)
{
    const char *endpoint = ff->fw.endpoint;
    ff->ctx = zmq_ctx_new();
    ff->publisher = curve_dealer(ff->ctx, run->harness, "bench-publisher", endpoint);
    bool ok = ff->publisher != NULL;
    if (ok) /* a stuck forwarder ends the phase, as a stuck caveatd does */
        set_int(ff->publisher, ZMQ_SNDTIMEO, PUBLISH_TIMEOUT_MS);
    for (int i = 0; ok && i < N_SUBSCRIBERS; i++) {
        subscriber_t *s = &run->subs[i];
        ok = (s->dealer = curve_dealer(ff->ctx, run->harness, s->id, endpoint)) != NULL;
    }
    if (!ok)
        snprintf(note, size, "cannot make the clients' CURVE sockets");
    else if (!(ok = fanfwd_hello(ff, run)))
        snprintf(note, size, "only %d of %d clients reached the forwarder",
                 atomic_load(&ff->fw.ready), FORWARDER_KEYS);
    return ok;
}

static void fanfwd_stop(fanout_forwarder_t *ff, fanout_t *run)
{
    for (int i = 0; i < N_SUBSCRIBERS; i++)
        if (run->subs[i].dealer)
            zmq_close(run->subs[i].dealer);
    if (ff->publisher)
        zmq_close(ff->publisher);
    if (ff->ctx)
        zmq_ctx_term(ff->ctx);
    if (ff->started) {
        atomic_store(&ff->fw.stop, true);
        pthread_join(ff->thread, NULL);
    }
    if (ff->fw.ctx)
        forwarder_stop(&ff->fw);
}

/*  As fanout_publish, on the same absolute schedule, but each report is
 *  packed and sent as one message, stamped just before: here the publish
 *  call is the zmq_msg_send, which returns once libzmq has queued it. */
static void fanfwd_publish(fanout_t *run, void *publisher, uint64_t t0)
{
    Caveat__Report *r = make_report(fanout_categories[0], fanout_areas[0]);
    uint64_t interval = 1000000000u / (uint64_t)run->opt->rate;
    for (uint64_t k = 0; k < run->reports && !atomic_load(&run->failed); k++) {
        bench_sleep_until(t0 + k * interval);
        uint64_t v = k % N_VARIANTS, t = bench_now_ns();
        replace(&r->category, fanout_categories[v % 3]);
        replace(&r->area, fanout_areas[v / 3]);
        stamp(r, "fanout", k, t0 + k * interval, t);
        zmq_msg_t msg;
        zmq_msg_init_size(&msg, caveat__report__get_packed_size(r));
        caveat__report__pack(r, zmq_msg_data(&msg));
        if (zmq_msg_send(&msg, publisher, 0) < 0) {
            fprintf(stderr, "broker_bench: fan-out forwarder publish: %s\n",
                    zmq_strerror(zmq_errno()));
            atomic_store(&run->failed, true);
        }
        zmq_msg_close(&msg);
        run->call_us[run->calls++] = (uint32_t)((bench_now_ns() - t) / 1000u);
    }
    caveat__report__free_unpacked(r, NULL);
}

/*  One message: the report decoded, as libcaveat decodes a delivery. */
static void fanfwd_record(subscriber_t *s, zmq_msg_t *msg, uint64_t t)
{
    Caveat__Report *r = caveat__report__unpack(NULL, zmq_msg_size(msg), zmq_msg_data(msg));
    if (r)
        record_report(s, r, t);
    else
        s->unexpected++;
    caveat__report__free_unpacked(r, NULL);
}

/*  As fanout_subscriber, without acknowledgements: the forwarder has none.
 *  The dealer's 100 ms receive timeout lets it see the deadline. */
static void *fanfwd_subscriber(void *arg)
{
    subscriber_t *s = arg;
    fanout_t *run = s->run;
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    while (s->received < s->expected && bench_now_ns() < run->deadline &&
           !atomic_load(&run->failed)) {
        if (zmq_msg_recv(&msg, s->dealer, 0) < 0)
            continue;
        uint64_t t = bench_now_ns();
        fanfwd_record(s, &msg, t);
        atomic_store(&run->t_last, t);
    }
    zmq_msg_close(&msg);
    return NULL;
}

/*  As count_extra_deliveries: what arrives after a subscriber stopped. */
static void fanfwd_extra(fanout_t *run)
{
    sleep_us(200000);
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    for (int i = 0; i < N_SUBSCRIBERS; i++)
        while (zmq_msg_recv(&msg, run->subs[i].dealer, ZMQ_DONTWAIT) >= 0)
            run->subs[i].unexpected++;
    zmq_msg_close(&msg);
}

/*  As fanout_run; the server's CPU is the forwarder thread's and its I/O
 *  thread's, the clients' the rest of this process. */
static void fanfwd_run(fanout_forwarder_t *ff, fanout_t *run, fanout_result_t *r)
{
    uint64_t t0 = bench_now_ns() + 100000000u; /* 100 ms for the threads to start */
    run->deadline = t0 + (uint64_t)((run->opt->seconds + DRAIN_LIMIT_S) * 1e9);
    for (int i = 0; i < N_SUBSCRIBERS; i++)
        pthread_create(&run->subs[i].thread, NULL, fanfwd_subscriber, &run->subs[i]);
    double fw0 = forwarder_cpu(), self0 = bench_process_cpu(getpid());
    fanfwd_publish(run, ff->publisher, t0);
    uint64_t t_pub_end = bench_now_ns();
    for (int i = 0; i < N_SUBSCRIBERS; i++)
        pthread_join(run->subs[i].thread, NULL);
    r->server_cpu_s = forwarder_cpu() - fw0;
    fanfwd_extra(run);
    r->clients_cpu_s = bench_process_cpu(getpid()) - self0 - (forwarder_cpu() - fw0);
    r->published = run->reports;
    fanout_figures(run, t0, t_pub_end, r);
}

static void measure_fanout_forwarder(const options_t *opt, fanout_result_t *r)
{
    r->label = "forwarder";
    fanout_t *run = calloc(1, sizeof *run);
    fanout_forwarder_t *ff = calloc(1, sizeof *ff);
    char *text = fanout_prepare(run, opt, r);
    if (text && !fanfwd_start(ff, run))
        snprintf(r->note, sizeof r->note, "cannot start the forwarder: %s",
                 zmq_strerror(zmq_errno()));
    else if (text && fanfwd_connect(ff, run, r->note, sizeof r->note))
        fanfwd_run(ff, run, r);
    fanfwd_stop(ff, run); /* the forwarder's counts are final once it stopped */
    if (r->ran && atomic_load(&run->failed))
        snprintf(r->note, sizeof r->note, "a client failed (see above)");
    else if (r->ran && ff->fw.dropped)
        snprintf(r->note, sizeof r->note, "the forwarder could not forward %" PRIu64 " messages",
                 ff->fw.dropped);
    free(text);
    fanout_cleanup(run);
    free(ff);
    free(run);
}

/* ------------------------------------------------------------------------ */
/*  Output.                                                                 */

static double rate_of(const path_result_t *r)
{
    return r->ran && r->end_to_end_s > 0 ? (double)r->received / r->end_to_end_s : 0;
}

static void print_path(const path_result_t *r)
{
    if (!r->name)
        return;
    if (!r->ran) {
        printf("  %-34s %s\n", r->name, r->note);
        return;
    }
    char clients[16] = "-"; /* the store alone has none */
    if (!r->in_process)
        snprintf(clients, sizeof clients, "%6.0f %%",
                 r->end_to_end_s > 0 ? 100 * r->clients_cpu_s / r->end_to_end_s : 0);
    printf("  %-34s %9" PRIu64 " %8.2f %11.0f %11.0f %6.0f %% %8s\n", r->name, r->received,
           r->end_to_end_s, rate_of(r), r->publish_s > 0 ? (double)r->published / r->publish_s : 0,
           r->end_to_end_s > 0 ? 100 * r->server_cpu_s / r->end_to_end_s : 0, clients);
    if (r->note[0])
        printf("  %-34s   ^ %s\n", "", r->note);
}

/*  Where each report's CPU went, by caveatd's threads and in the clients:
 *  on two cores a ratio of throughputs follows the ratio of the CPU each
 *  report takes in all, so a cost off the loop still costs throughput. */
static void print_threads(const path_result_t paths[N_PATHS])
{
    static const char *const heads[N_CAVEATD_THREADS] = {
        "loop", "zmq I/O", "checksums", "view sums", "leaf sums", "sync", "checkpoint"};
    bool any = false;
    for (int i = 0; i < N_PATHS; i++)
        any |= paths[i].ran && paths[i].threads && paths[i].received > 0;
    if (!any)
        return;
    printf("\nCPU per report received, us, by caveatd's threads (top -H names them) and in "
           "the clients; and minor page faults per 1,000 reports\n  %-34s",
           "path");
    for (size_t t = 0; t < N_CAVEATD_THREADS; t++)
        printf(" %10s", heads[t]);
    printf(" %8s %8s %14s %14s\n", "caveatd", "clients", "faults caveatd", "faults clients");
    for (int i = 0; i < N_PATHS; i++) {
        const path_result_t *r = &paths[i];
        if (!r->ran || !r->threads || r->received == 0)
            continue;
        double per = 1e6 / (double)r->received;
        printf("  %-34s", r->name);
        for (size_t t = 0; t < N_CAVEATD_THREADS; t++)
            printf(" %10.2f", r->thread_cpu_s[t] * per);
        printf(" %8.2f %8.2f %14.1f %14.1f\n", r->server_cpu_s * per, r->clients_cpu_s * per,
               1000 * r->server_faults / (double)r->received,
               1000 * r->clients_faults / (double)r->received);
    }
}

static void print_ratio(const char *what, const path_result_t *a, const path_result_t *b)
{
    if (rate_of(a) > 0 && rate_of(b) > 0)
        printf("  %-40s %.3f\n", what, rate_of(a) / rate_of(b));
    else
        printf("  %-40s n/a\n", what);
}

/*  Seconds one SHA-256 of size bytes takes (the checksum a new store
 *  takes of every report it stores: cv_checksum_sha256), over many. */
static double checksum_seconds(size_t size)
{
    enum { ROUNDS = 200000 };
    uint8_t *body = calloc(1, size ? size : 1), sum[32];
    uint64_t t0 = bench_now_ns();
    for (int i = 0; i < ROUNDS; i++) {
        body[0] = (uint8_t)i; /* not hoisted out of the loop */
        cv_checksum_sha256(sum, body, size);
    }
    double seconds = (double)(bench_now_ns() - t0) / 1e9 / ROUNDS;
    free(body);
    return seconds;
}

/*  What the checksum of each stored report costs. caveatd takes it beside
 *  its loop (broker/cv_hasher.h); what is left on the loop, from its
 *  stats, against the run's time, is what it costs throughput. The hash's
 *  own time says what it would cost on the loop. */
static void print_checksum_cost(size_t size, const path_result_t paths[N_PATHS])
{
    double hash = checksum_seconds(size);
    printf("\nchecksum: SHA-256 of a %zu-byte report takes %.2f us on this machine\n", size,
           hash * 1e6);
    double rate = rate_of(&paths[P_STORE]);
    if (rate > 0)
        printf("  %-40s %.1f %% of a report's time, taken in line\n", paths[P_STORE].name,
               100 * hash * rate);
    const path_result_t *full = &paths[P_FULL];
    if (!full->ran || full->checksum_loop_s < 0 || full->received == 0)
        return;
    double share = full->checksum_loop_s / full->end_to_end_s;
    printf("  %-40s %.2f us per report left on the loop, %.2f %% of the run (target < 3 %%: "
           "%s)\n",
           full->name, full->checksum_loop_s * 1e6 / (double)full->received, 100 * share,
           bench_verdict(100 * share < 3));
}

/*  Reports caveatd read back from the store because its cache no longer
 *  held them: what made a run's loop cost more a report than another's. */
static void print_read_back(const path_result_t paths[N_PATHS])
{
    printf("\nreports read back from the store (not in caveatd's report cache), and caveatd's "
           "turns\n");
    for (int i = 0; i < N_PATHS; i++)
        if (paths[i].ran && !paths[i].in_process && i != P_FORWARDER && i != P_NATS &&
            paths[i].received > 0 && paths[i].read_back >= 0 && paths[i].turns > 0)
            printf("  %-40s %.0f read back, %.1f %% of those received; %.0f turns, %.0f reports "
                   "a turn\n",
                   paths[i].name, paths[i].read_back,
                   100 * paths[i].read_back / (double)paths[i].received, paths[i].turns,
                   (double)paths[i].received / paths[i].turns);
}

static void print_workload1(const options_t *opt, const path_result_t paths[N_PATHS])
{
    Caveat__Report *r = make_report("vulnerable_individual", "hull");
    size_t size = caveat__report__get_packed_size(r);
    caveat__report__free_unpacked(r, NULL);
    printf("\nworkload 1: throughput, 1 publisher -> 1 subscriber, everything released\n");
    printf("  %zu-byte packed reports, %.1f s of publishing per path, caveatd batches of %d, "
           "window %" PRIu64 " reports\n\n",
           size, opt->seconds, opt->batch, opt->window);
    printf("  %-34s %9s %8s %11s %11s %8s %8s\n", "path", "received", "seconds", "reports/s",
           "publish/s", "server", "clients");
    for (int i = 0; i < N_PATHS; i++)
        print_path(&paths[i]);
    printf("\n  (server and clients: CPU as %% of one core over the run; 2 cores in all)\n");
    if (paths[P_STORE].ran)
        printf("  (store alone: reports committed to SQLite in this process, no network; its\n"
               "   server CPU is this process's, the store's checkpointer thread included)\n");
    print_threads(paths);
    printf("\nratios (end-to-end reports/s)\n");
    print_ratio("caveatd --sync full / forwarder", &paths[P_FULL], &paths[P_FORWARDER]);
    print_ratio("--sync full, audit log on / off", &paths[P_FULL], &paths[P_NOLOG]);
    print_ratio("caveatd --sync normal / forwarder", &paths[P_NORMAL], &paths[P_FORWARDER]);
    print_ratio("caveatd --sync off / forwarder", &paths[P_OFF], &paths[P_FORWARDER]);
    print_ratio("caveatd --sync full / nats-server", &paths[P_FULL], &paths[P_NATS]);
    print_ratio("caveatd --sync normal / nats-server", &paths[P_NORMAL], &paths[P_NATS]);
    print_ratio("forwarder / nats-server", &paths[P_FORWARDER], &paths[P_NATS]);
    print_ratio("store alone / forwarder", &paths[P_STORE], &paths[P_FORWARDER]);
    print_ratio("caveatd --sync full / store alone", &paths[P_FULL], &paths[P_STORE]);
    print_ratio("caveatd --sync normal / store alone", &paths[P_NORMAL], &paths[P_STORE]);
    if (paths[P_PARTNERSHIP].ran)
        print_ratio("--sync normal, N agencies / 2 agencies", &paths[P_PARTNERSHIP],
                    &paths[P_NORMAL]);
    print_checksum_cost(size, paths);
    print_read_back(paths);
}

/*  One row of the fan-out table: a figure per column that ran ('-' for one
 *  that did not), and a verdict where there is a target. Targets are caveatd's: the forwarder is
 * what they are measured against, not something that has to meet them. */
static void fanout_row(const char *metric, const fanout_result_t f[N_FANOUT], int decimals,
                       const char *unit, double (*value)(const fanout_result_t *),
                       const char *target, bool (*pass)(const fanout_result_t *))
{
    char figures[N_FANOUT][48], results[48] = "-";
    for (int i = 0; i < N_FANOUT; i++) {
        snprintf(figures[i], sizeof figures[i], "-");
        if (f[i].ran && !isnan(value(&f[i]))) /* NAN: not this column's */
            snprintf(figures[i], sizeof figures[i], "%.*f%s", decimals, value(&f[i]), unit);
    }
    if (pass)
        snprintf(results, sizeof results, "%s / %s",
                 f[F_FULL].ran ? bench_verdict(pass(&f[F_FULL])) : "-",
                 f[F_NORMAL].ran ? bench_verdict(pass(&f[F_NORMAL])) : "-");
    printf("  %-42s %-13s %-13s %-13s ", metric, figures[F_FULL], figures[F_NORMAL],
           figures[F_FORWARDER]);
    if (f[F_NOLOG].ran) /* --sync full with the audit log off: its own column */
        printf("%-13s ", figures[F_NOLOG]);
    printf("%-8s %s\n", target, results);
}

static double fan_delivered(const fanout_result_t *f)
{
    return (double)f->delivered;
}
static double fan_expected(const fanout_result_t *f)
{
    return (double)f->expected;
}
static bool fan_complete(const fanout_result_t *f)
{
    return f->delivered == f->expected && !f->unexpected && !f->note[0];
}
static double fan_rate(const fanout_result_t *f)
{
    return f->deliver_s > 0 ? (double)f->delivered / f->deliver_s : 0;
}
static double fan_sched_p50(const fanout_result_t *f)
{
    return f->sched_p50;
}
static double fan_sched_p99(const fanout_result_t *f)
{
    return f->sched_p99;
}
static bool fan_sched_ok(const fanout_result_t *f)
{
    return fan_complete(f) && f->sched_p99 < 5.0;
}
static double fan_sched_max(const fanout_result_t *f)
{
    return f->sched_max;
}
static double fan_sent_p50(const fanout_result_t *f)
{
    return f->sent_p50;
}
static double fan_sent_p99(const fanout_result_t *f)
{
    return f->sent_p99;
}
static bool fan_sent_ok(const fanout_result_t *f)
{
    return fan_complete(f) && f->sent_p99 < 5.0;
}
static double fan_call_p50(const fanout_result_t *f)
{
    return f->call_p50_ms;
}
static double fan_call_p99(const fanout_result_t *f)
{
    return f->call_p99_ms;
}
static double fan_batch(const fanout_result_t *f)
{
    return f->calls ? (double)f->reports / (double)f->calls : 0;
}
static double fan_stalls(const fanout_result_t *f)
{
    return f->stats ? f->stalls : NAN;
}
static double fan_stall_share(const fanout_result_t *f)
{
    return f->stats ? 100 * f->stall_share : NAN;
}
static double fan_server_cpu(const fanout_result_t *f)
{
    return f->deliver_s > 0 ? 100 * f->server_cpu_s / f->deliver_s : 0;
}
static double fan_clients_cpu(const fanout_result_t *f)
{
    return f->deliver_s > 0 ? 100 * f->clients_cpu_s / f->deliver_s : 0;
}

/*  The first column that ran, caveatd's before the forwarder's (its views
 *  are whole reports), or NULL. */
static const fanout_result_t *fanout_any(const fanout_result_t f[N_FANOUT])
{
    for (int i = 0; i < N_FANOUT; i++)
        if (f[i].ran)
            return &f[i];
    return NULL;
}

static void print_fanout_notes(const fanout_result_t f[N_FANOUT])
{
    for (int i = 0; i < N_FANOUT; i++) {
        if (f[i].label && (!f[i].ran || f[i].note[0]))
            printf("  %s: %s\n", f[i].label, f[i].note[0] ? f[i].note : "not run");
        if (f[i].unexpected)
            printf("  %s: %" PRIu64 " deliveries the policy does not release, or without "
                   "a timestamp\n",
                   f[i].label, f[i].unexpected);
    }
}

/*  What the audit log adds to the fan-out's tail, and the forwarder's
 *  tail against caveatd's, both measured in this run. */
static void print_audit_cost(const fanout_result_t f[N_FANOUT])
{
    const fanout_result_t *on = &f[F_FULL], *off = &f[F_NOLOG], *fw = &f[F_FORWARDER];
    if (on->ran && off->ran && fan_complete(on) && fan_complete(off)) {
        double added = on->sched_p99 - off->sched_p99;
        printf("\n  audit log's cost on p99 from scheduled send (--sync full): %.2f ms on, "
               "%.2f ms off:\n  %+.2f ms (target < 1 ms: %s)\n",
               on->sched_p99, off->sched_p99, added, bench_verdict(added < 1.0));
    }
    if (on->ran && fw->ran && fan_complete(on) && fan_complete(fw) && fw->sched_p99 > 0)
        printf("  caveatd --sync full p99 / forwarder p99: %.2f (target <= 2 and < 5 ms: %s)\n",
               on->sched_p99 / fw->sched_p99,
               bench_verdict(on->sched_p99 <= 2 * fw->sched_p99 && on->sched_p99 < 5.0));
}

static void print_workload2(const options_t *opt, const fanout_result_t f[N_FANOUT])
{
    const fanout_result_t *any = fanout_any(f);
    printf("\nworkload 2: fan-out through caveatd, and through a zero-logic CURVE forwarder\n");
    print_fanout_notes(f);
    if (!any)
        return;
    printf("  %d agencies (1 publisher, %d subscribers of %d types), %d rules with different "
           "views;\n  %.1f recipients per report; %d reports/s offered for %.1f s = %" PRIu64
           " reports\n",
           any->agencies, N_SUBSCRIBERS, N_FANOUT_TYPES, any->rules, any->recipients_per_report,
           opt->rate, opt->seconds, any->reports);
    printf("  mean view size by recipient type: %s\n\n", any->views);
    printf("  %-42s %-13s %-13s %-13s ", "metric", "--sync full", "--sync normal", "forwarder");
    if (f[F_NOLOG].ran)
        printf("%-13s ", "full, no log");
    printf("%-8s %s\n", "target", "result");
    fanout_row("deliveries received", f, 0, "", fan_delivered, "all", fan_complete);
    fanout_row("deliveries the policy releases", f, 0, "", fan_expected, "", NULL);
    fanout_row("deliveries/s (first publish..last receipt)", f, 0, "/s", fan_rate, "", NULL);
    fanout_row("latency p50 from scheduled send", f, 2, " ms", fan_sched_p50, "", NULL);
    fanout_row("latency p99 from scheduled send", f, 2, " ms", fan_sched_p99, "< 5 ms",
               fan_sched_ok);
    fanout_row("latency max from scheduled send", f, 2, " ms", fan_sched_max, "", NULL);
    fanout_row("latency p50 from the publish call", f, 2, " ms", fan_sent_p50, "", NULL);
    fanout_row("latency p99 from the publish call", f, 2, " ms", fan_sent_p99, "< 5 ms",
               fan_sent_ok);
    fanout_row("publish call p50 (start / zmq send)", f, 2, " ms", fan_call_p50, "", NULL);
    fanout_row("publish call p99 (start / zmq send)", f, 2, " ms", fan_call_p99, "", NULL);
    fanout_row("reports per publish call (mean)", f, 1, "", fan_batch, "", NULL);
    fanout_row("WAL syncs over 5 ms (caveatd's stats)", f, 0, "", fan_stalls, "", NULL);
    fanout_row("  time beyond 5 ms, % of the phase", f, 2, " %", fan_stall_share, "< 1 %", NULL);
    fanout_row("caveatd / forwarder CPU, % of one core", f, 0, " %", fan_server_cpu, "", NULL);
    fanout_row("the 51 clients' CPU, % of one core", f, 0, " %", fan_clients_cpu, "", NULL);
    print_audit_cost(f);
    if (f[F_FORWARDER].ran)
        printf("\n  (forwarder: the same reports, schedule and clients' keys through a CURVE\n"
               "   ROUTER in this process that decides recipients and sends each the whole\n"
               "   report, one message each: no store, acks, credit or redaction. Its\n"
               "   publish call is one zmq_msg_send; its CPU is its thread's and its libzmq\n"
               "   I/O thread's. The floor the transport puts under caveatd on this machine;\n"
               "   results are caveatd's, --sync full / --sync normal)\n");
}

/*  a's rate over b's against a floor: ">= 1.0" is floor 1. */
static void print_target(const char *what, const path_result_t *a, const path_result_t *b,
                         double floor)
{
    char target[16];
    snprintf(target, sizeof target, ">= %.2g", floor);
    if (rate_of(a) > 0 && rate_of(b) > 0)
        printf("  %-44s %-10.3f %-10s %s\n", what, rate_of(a) / rate_of(b), target,
               bench_verdict(rate_of(a) >= floor * rate_of(b)));
}

static void print_targets(const path_result_t paths[N_PATHS])
{
    printf("\ntargets, workload 1 (ratio of end-to-end reports/s)\n");
    print_target("caveatd --sync full >= 0.7 x forwarder", &paths[P_FULL], &paths[P_FORWARDER],
                 0.7);
    print_target("audit log on >= 0.85 x off (--sync full)", &paths[P_FULL], &paths[P_NOLOG], 0.85);
    print_target("caveatd --sync normal >= forwarder", &paths[P_NORMAL], &paths[P_FORWARDER], 1.0);
    print_target("N agencies >= 0.8 x 2 agencies (--sync normal)", &paths[P_PARTNERSHIP],
                 &paths[P_NORMAL], 0.8);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: broker_bench [--seconds S] [--batch N] [--window N] [--rate R]\n"
            "                    [--in-flight N] [--pipeline N] [--agencies N] [--receipts]\n"
            "                    [--repeat N]\n"
            "                    [--only full|normal|off|forwarder|nats|store|fanout|"
            "fanout-full|fanout-normal|fanout-forwarder|partnership|nolog|fanout-nolog|"
            "audit|audit-throughput|throughput]\n");
    exit(2);
}

static void parse_args(options_t *o, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        bool value = i + 1 < argc;
        if (value && strcmp(argv[i], "--seconds") == 0)
            o->seconds = atof(argv[++i]);
        else if (value && strcmp(argv[i], "--batch") == 0)
            o->batch = atoi(argv[++i]);
        else if (value && strcmp(argv[i], "--window") == 0)
            o->window = strtoull(argv[++i], NULL, 10);
        else if (value && strcmp(argv[i], "--rate") == 0)
            o->rate = atoi(argv[++i]);
        else if (value && strcmp(argv[i], "--in-flight") == 0)
            o->in_flight = atoi(argv[++i]);
        else if (value && strcmp(argv[i], "--pipeline") == 0)
            o->pipeline = atoi(argv[++i]);
        else if (value && strcmp(argv[i], "--agencies") == 0)
            o->agencies = atoi(argv[++i]);
        else if (value && strcmp(argv[i], "--only") == 0)
            o->only = argv[++i];
        else if (value && strcmp(argv[i], "--repeat") == 0)
            o->repeat = atoi(argv[++i]);
        else if (strcmp(argv[i], "--receipts") == 0)
            o->receipts = true;
        else
            usage();
    }
    static const char *const phases[] = {
        "full",        "normal", "off",          "forwarder",     "nats",
        "store",       "fanout", "fanout-full",  "fanout-normal", "fanout-forwarder",
        "partnership", "nolog",  "fanout-nolog", "audit",         "audit-throughput",
        "throughput"};
    bool known = !o->only;
    for (int i = 0; i < (int)(sizeof phases / sizeof *phases) && !known; i++)
        known = strcmp(o->only, phases[i]) == 0;
    if (!known || o->seconds <= 0 || o->seconds > 60 || o->batch < 1 || o->batch > 5000 ||
        o->window < (uint64_t)o->batch * (uint64_t)(o->pipeline > 0 ? o->pipeline : 1) ||
        o->rate < 1 || o->rate > 100000 || o->in_flight < 1 || o->in_flight > 16 ||
        o->pipeline < 1 || o->pipeline > 16 || o->agencies < 2 || o->agencies > 100000 ||
        o->repeat < 1 || o->repeat > MAX_REPEAT)
        usage();
}

/*  --only NAME runs one phase; "fanout" names all three fan-out phases. */
static bool phase(const options_t *o, const char *name)
{
    if (!o->only || strcmp(o->only, name) == 0)
        return true;
    return strcmp(o->only, "fanout") == 0 && strncmp(name, "fanout-", 7) == 0;
}

static bool any_fanout(const options_t *o)
{
    return phase(o, "fanout-full") || phase(o, "fanout-normal") || phase(o, "fanout-forwarder") ||
           phase(o, "fanout-nolog") || phase(o, "audit");
}

/*  The targets' figures of one run of the phases; NAN where it had no
 *  such phase (or the phase did not complete). */
enum {
    FIG_FULL_FORWARDER, /* workload 1 reports/s: --sync full / forwarder */
    FIG_LOG_ON_OFF,     /* workload 1: audit log on / off */
    FIG_PARTNERSHIP,    /* workload 1: --agencies N / 2 (--sync normal) */
    FIG_LOG_ADDS_MS,    /* fan-out p99 from the scheduled send: log on - off */
    FIG_FAN_FULL_P99,   /* fan-out --sync full p99, ms */
    FIG_FAN_RATIO,      /* fan-out p99: --sync full / forwarder */
    N_FIGURES
};
typedef struct {
    double v[N_FIGURES];
} figures_t;

/*  Each figure's target: a floor, or a ceiling (at_most, not reached). */
static const struct {
    const char *what, *target;
    double bound;
    bool at_most;
} figure_targets[N_FIGURES] = {
    [FIG_FULL_FORWARDER] = {"workload 1: --sync full / forwarder", ">= 0.7", 0.7, false},
    [FIG_LOG_ON_OFF] = {"workload 1: audit log on / off", ">= 0.85", 0.85, false},
    [FIG_PARTNERSHIP] = {"workload 1: N agencies / 2", ">= 0.8", 0.8, false},
    [FIG_LOG_ADDS_MS] = {"fan-out: the log adds to p99, ms", "< 1", 1.0, true},
    [FIG_FAN_FULL_P99] = {"fan-out: --sync full p99, ms", "< 5", 5.0, true},
    [FIG_FAN_RATIO] = {"fan-out: p99 --sync full / forwarder", "<= 2", 2.0 + 1e-9, true},
};

static double ratio_or_nan(const path_result_t *a, const path_result_t *b)
{
    return rate_of(a) > 0 && rate_of(b) > 0 ? rate_of(a) / rate_of(b) : NAN;
}

static double p99_or_nan(const fanout_result_t *f)
{
    return f->ran && fan_complete(f) ? f->sched_p99 : NAN;
}

static figures_t figures_of(const path_result_t paths[N_PATHS], const fanout_result_t f[N_FANOUT])
{
    double full = p99_or_nan(&f[F_FULL]), fw = p99_or_nan(&f[F_FORWARDER]);
    return (figures_t){{
        [FIG_FULL_FORWARDER] = ratio_or_nan(&paths[P_FULL], &paths[P_FORWARDER]),
        [FIG_LOG_ON_OFF] = ratio_or_nan(&paths[P_FULL], &paths[P_NOLOG]),
        [FIG_PARTNERSHIP] = ratio_or_nan(&paths[P_PARTNERSHIP], &paths[P_NORMAL]),
        [FIG_LOG_ADDS_MS] = full - p99_or_nan(&f[F_NOLOG]),
        [FIG_FAN_FULL_P99] = full,
        [FIG_FAN_RATIO] = fw > 0 ? full / fw : NAN,
    }};
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/*  Figure fig over the runs, its median, and the verdict on the median.
 *  Nothing when no run gave it. */
static void repeat_row(const figures_t *runs, int n, int fig)
{
    double v[MAX_REPEAT];
    int k = 0;
    for (int i = 0; i < n; i++)
        if (!isnan(runs[i].v[fig]))
            v[k++] = runs[i].v[fig];
    if (k == 0)
        return;
    printf("  %-40s", figure_targets[fig].what);
    for (int i = 0; i < k; i++)
        printf(" %.3g", v[i]);
    qsort(v, (size_t)k, sizeof *v, cmp_double);
    double median = k % 2 ? v[k / 2] : (v[k / 2 - 1] + v[k / 2]) / 2;
    bool at_most = figure_targets[fig].at_most;
    double bound = figure_targets[fig].bound;
    printf("\n  %-40s %-10.3f %-10s %s\n", "  median", median, figure_targets[fig].target,
           bench_verdict(at_most ? median < bound : median >= bound));
}

static void print_repeats(const figures_t *runs, int n)
{
    printf("\ntargets over %d runs, judged on the medians\n", n);
    for (int fig = 0; fig < N_FIGURES; fig++)
        repeat_row(runs, n, fig);
}

/*  The audit log on, then off; in odd runs of --repeat off first, so that
 *  neither always runs in the writeback of the phases before it. */
static void measure_log_on_off(const options_t *opt, int run, path_result_t paths[N_PATHS])
{
    for (int i = 0; i < 2; i++) {
        bool on = (i == 0) == (run % 2 == 0);
        bool wanted = on ? phase(opt, "full") : phase(opt, "nolog");
        if (wanted || phase(opt, "audit") || phase(opt, "audit-throughput"))
            measure_caveatd(opt, "full", 2, on, &paths[on ? P_FULL : P_NOLOG]);
    }
}

static void measure_fanout_on_off(const options_t *opt, int run, fanout_result_t fan[N_FANOUT])
{
    for (int i = 0; i < 2; i++) {
        bool on = (i == 0) == (run % 2 == 0);
        bool wanted = on ? phase(opt, "fanout-full") : phase(opt, "fanout-nolog");
        if (wanted || phase(opt, "audit"))
            measure_fanout(opt, "full", on, &fan[on ? F_FULL : F_NOLOG]);
    }
}

/*  Workload 1's target alone: caveatd --sync full and the forwarder; in
 *  odd runs of --repeat the forwarder first, as measure_log_on_off takes
 *  turns, so that neither always runs in the other's writeback. */
static void measure_throughput(const options_t *opt, int run, path_result_t paths[N_PATHS])
{
    if (!opt->only || strcmp(opt->only, "throughput") != 0)
        return;
    for (int i = 0; i < 2; i++) {
        if ((i == 0) == (run % 2 == 0))
            measure_caveatd(opt, "full", 2, true, &paths[P_FULL]);
        else
            measure_forwarder(opt, &paths[P_FORWARDER]);
    }
}

static void run_phases(const options_t *opt, int run, path_result_t paths[N_PATHS],
                       fanout_result_t fan[N_FANOUT])
{
    measure_throughput(opt, run, paths);
    measure_log_on_off(opt, run, paths);
    if (phase(opt, "normal") || (opt->agencies > 2 && phase(opt, "partnership")))
        measure_caveatd(opt, "normal", 2, true, &paths[P_NORMAL]);
    if (opt->agencies > 2 && phase(opt, "partnership"))
        measure_caveatd(opt, "normal", opt->agencies, true, &paths[P_PARTNERSHIP]);
    if (phase(opt, "off"))
        measure_caveatd(opt, "off", 2, true, &paths[P_OFF]);
    if (phase(opt, "forwarder"))
        measure_forwarder(opt, &paths[P_FORWARDER]);
    if (phase(opt, "nats"))
        measure_nats(opt, &paths[P_NATS]);
    measure_fanout_on_off(opt, run, fan);
    if (phase(opt, "fanout-normal"))
        measure_fanout(opt, "normal", true, &fan[F_NORMAL]);
    if (phase(opt, "fanout-forwarder"))
        measure_fanout_forwarder(opt, &fan[F_FORWARDER]);
    /* last: the store writes hundreds of MB without fsync, and their
     * writeback must not land in another path's fsyncs */
    if (phase(opt, "store"))
        measure_store(opt, &paths[P_STORE]);
}

int main(int argc, char **argv)
{
    /* as an application of libcaveat's would (caveat.h): the clients and
     * the forwarder alike */
    cv_keep_freed_memory();
    /* 1000 reports a call: libcaveat sends them as four batches of about 256
     * KB, all in flight at once, so the broker always has the next one */
    options_t opt = {.seconds = 5,
                     .batch = 1000,
                     .window = 10000,
                     .rate = 1000,
                     .in_flight = 1,
                     .pipeline = 4,
                     .agencies = 2,
                     .repeat = 1};
    parse_args(&opt, argc, argv);
    signal(SIGPIPE, SIG_IGN);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    double load[3] = {0};
    if (getloadavg(load, 3) < 0)
        load[0] = -1;
    printf("broker_bench: %ld cores, load average %.2f before the run; all traffic on "
           "127.0.0.1\n",
           cores, load[0]);
    fflush(stdout);
    figures_t runs[MAX_REPEAT];
    for (int run = 0; run < opt.repeat; run++) {
        if (opt.repeat > 1)
            printf("\n== run %d of %d\n", run + 1, opt.repeat);
        path_result_t paths[N_PATHS] = {{0}};
        fanout_result_t fan[N_FANOUT] = {{0}};
        run_phases(&opt, run, paths, fan);
        if (!opt.only || !any_fanout(&opt) || strcmp(opt.only, "audit") == 0) {
            print_workload1(&opt, paths);
            print_targets(paths);
        }
        if (any_fanout(&opt))
            print_workload2(&opt, fan);
        runs[run] = figures_of(paths, fan);
        fflush(stdout);
    }
    if (opt.repeat > 1)
        print_repeats(runs, opt.repeat);
    bench_print_load(load[0]);
    return 0;
}
