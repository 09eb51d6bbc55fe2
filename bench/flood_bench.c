/*  flood_bench.c: what one hostile listed agency does to everyone else.
 *  Not a test: it prints figures and exits 0 whatever they are. All
 *  traffic is on 127.0.0.1.
 *
 *  caveatd runs through the end-to-end harness with the example policy.
 *  The victim is the example's safeguarding referral: hum-bcu-hull
 *  publishes vulnerable_individual reports one at a time and hull-cc
 *  receives them (libcaveat both); each report's round trip is from the
 *  publish call to its delivery. Three phases of --seconds each:
 *    quiet  the victim alone;
 *    flood  the victim while hull-college, a listed agency, floods with
 *           raw CURVE DEALERs (libcaveat would refuse to send most of it):
 *           Publish frames of the broker's largest size full of tiny
 *           reports, Hello after Hello on a socket that never reads its
 *           answers, Heartbeats from several connections, and idle TCP
 *           connections that never greet;
 *    after  the victim alone again, once the hostile sockets are closed.
 *  Per phase: the victim's p50/p99, caveatd's VmRSS and VmHWM at the end
 *  of the phase; then the flood/quiet ratios, and the load average before
 *  and after the run: a run whose load exceeded the cores is marked not
 *  comparable (something else was competing for the CPU).
 *
 *  Every loop is bounded in count and in time.
 *
 *  Usage: flood_bench [--seconds S] [--reports N]
 */
#include <arpa/inet.h>
#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_common.h"
#include "caveat.h"
#include "cv_proto.h" /* internals: the schema, JSON, the wire protocol */
#include "harness.h"

#define HOSTILE           "hull-college"
#define PUBLISHER         "hum-bcu-hull"
#define SUBSCRIBER        "hull-cc"
#define HEARTBEATERS      4
#define IDLE_CONNECTIONS  200
#define MAX_FRAMES        10000    /* Publish frames the flooder sends at most */
#define MAX_HELLOS        1000000  /* Hellos the never-reading socket sends at most */
#define MAX_HEARTBEATS    10000000 /* Heartbeats each heartbeater sends at most */
#define SEND_TIMEOUT_MS   100      /* a hostile send waits at most this long */
#define VICTIM_TIMEOUT_MS 10000    /* a victim's publish or delivery waits at most this long */
#define FRAME_MARGIN      1024     /* bytes under the broker's max_frame */

/* ------------------------------------------------------------------------ */
/*  Options, figures.                                                       */

typedef struct {
    double seconds;
    int reports; /* the victim's reports per phase, at most */
} options_t;

typedef struct {
    const char *name;
    size_t n;    /* round trips measured */
    size_t lost; /* publishes refused or deliveries not seen in time */
    double p50_ms, p99_ms, max_ms;
    long rss_kb, hwm_kb;
} phase_t;

/*  What the hostile agency managed to send, and the broker answered. */
typedef struct {
    atomic_uint_fast64_t frames, reports, hellos, heartbeats, acks_ok, acks_refused;
    int idle_open;
} hostile_counts_t;

static uint64_t ms_to_ns(double ms)
{
    return (uint64_t)(ms * 1e6);
}

/* ------------------------------------------------------------------------ */
/*  The victim: publish one, wait for its delivery, repeat.                 */

static void measure(bench_victim_t *v, const options_t *opt, harness_t *h, phase_t *phase)
{
    uint64_t *times = calloc((size_t)opt->reports, sizeof *times);
    uint64_t end = bench_now_ns() + ms_to_ns(opt->seconds * 1000);
    while (bench_now_ns() < end && phase->n + phase->lost < (size_t)opt->reports) {
        uint64_t ns = bench_round_trip(v);
        if (ns)
            times[phase->n++] = ns;
        else
            phase->lost++;
    }
    bench_sort_ns(times, phase->n);
    phase->p50_ms = bench_quantile_ms(times, phase->n, 0.50);
    phase->p99_ms = bench_quantile_ms(times, phase->n, 0.99);
    phase->max_ms = bench_quantile_ms(times, phase->n, 1.0);
    phase->rss_kb = bench_status_kb(harness_pid(h), "VmRSS");
    phase->hwm_kb = bench_status_kb(harness_pid(h), "VmHWM");
    free(times);
}

/* ------------------------------------------------------------------------ */
/*  The hostile agency: raw CURVE DEALERs with its listed key.              */

typedef struct {
    harness_t *h;
    atomic_bool stop;
    uint64_t deadline; /* every hostile loop ends by then, stop or not */
    hostile_counts_t counts;
    uint32_t max_frame;
} flood_t;

static bool flooding(flood_t *f)
{
    return !atomic_load(&f->stop) && bench_now_ns() < f->deadline;
}

static zsock_t *hostile_dealer(harness_t *h)
{
    char path[600];
    snprintf(path, sizeof path, "%s", harness_path(h, "broker.cert"));
    zcert_t *server = zcert_load(path);
    snprintf(path, sizeof path, "%s", harness_path(h, HOSTILE ".cert_secret"));
    zcert_t *mine = zcert_load(path);
    zsock_t *dealer = server && mine ? zsock_new(ZMQ_DEALER) : NULL;
    if (dealer) {
        zsock_set_linger(dealer, 0);
        zsock_set_sndtimeo(dealer, SEND_TIMEOUT_MS);
        zsock_set_rcvtimeo(dealer, 0);
        zcert_apply(mine, dealer);
        zsock_set_curve_serverkey(dealer, zcert_public_txt(server));
        zsock_connect(dealer, "%s", harness_endpoint(h));
    }
    zcert_destroy(&server);
    zcert_destroy(&mine);
    return dealer;
}

static bool send_frame(zsock_t *dealer, const Caveat__Wire__Frame *frame)
{
    zframe_t *f = zframe_new(NULL, caveat__wire__frame__get_packed_size(frame));
    caveat__wire__frame__pack(frame, zframe_data(f));
    if (zframe_send(&f, dealer, 0) == 0)
        return true;
    zframe_destroy(&f);
    return false;
}

static bool send_hello(zsock_t *dealer, uint32_t credit)
{
    Caveat__Wire__Hello hello = CAVEAT__WIRE__HELLO__INIT;
    hello.has_version = hello.has_credit = true;
    hello.version = 1;
    hello.credit = credit;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_HELLO;
    frame.hello = &hello;
    return send_frame(dealer, &frame);
}

/*  A report as small as the broker accepts: id, category, level, area. */
static Caveat__Report *tiny_report(uint64_t frame, size_t i)
{
    Caveat__Report *r = malloc(sizeof *r);
    caveat__report__init(r);
    char id[48];
    snprintf(id, sizeof id, "x%" PRIu64 "-%zu", frame, i);
    r->id = strdup(id);
    r->category = strdup("community_tension");
    r->handling_level = strdup("OFFICIAL");
    r->area = strdup("hull");
    return r;
}

/*  A Publish frame of tiny reports, as close to max_frame as it gets:
 *  each report costs its packed size, a tag byte and a length of at most
 *  3 bytes in the frame. */
static zframe_t *max_size_publish(uint64_t serial, uint32_t max_frame, size_t *n_reports)
{
    Caveat__Wire__Publish publish = CAVEAT__WIRE__PUBLISH__INIT;
    publish.has_batch = true;
    publish.batch = serial;
    size_t cap = 0, size = 16; /* the Frame's and Publish's own tags and lengths */
    for (;;) {
        Caveat__Report *r = tiny_report(serial, publish.n_reports);
        size_t cost = caveat__report__get_packed_size(r) + 4;
        if (size + cost > max_frame - FRAME_MARGIN) {
            caveat__report__free_unpacked(r, NULL);
            break;
        }
        if (publish.n_reports == cap) {
            cap = cap ? cap * 2 : 1024;
            publish.reports = realloc(publish.reports, cap * sizeof *publish.reports);
        }
        publish.reports[publish.n_reports++] = r;
        size += cost;
    }
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_PUBLISH;
    frame.publish = &publish;
    zframe_t *f = zframe_new(NULL, caveat__wire__frame__get_packed_size(&frame));
    caveat__wire__frame__pack(&frame, zframe_data(f));
    *n_reports = publish.n_reports;
    for (size_t i = 0; i < publish.n_reports; i++)
        caveat__report__free_unpacked(publish.reports[i], NULL);
    free(publish.reports);
    return f;
}

/*  Counts the PublishAcks waiting, without waiting. */
static void drain_acks(flood_t *f, zsock_t *dealer)
{
    zframe_t *in;
    for (int i = 0; i < 100 && (in = zframe_recv(dealer)); i++) {
        Caveat__Wire__Frame *frame =
            caveat__wire__frame__unpack(NULL, zframe_size(in), zframe_data(in));
        zframe_destroy(&in);
        if (frame && frame->body_case == CAVEAT__WIRE__FRAME__BODY_PUBLISH_ACK)
            for (size_t r = 0; r < frame->publish_ack->n_results; r++)
                atomic_fetch_add(frame->publish_ack->results[r]->status == CAVEAT__WIRE__STATUS__OK
                                     ? &f->counts.acks_ok
                                     : &f->counts.acks_refused,
                                 1);
        caveat__wire__frame__free_unpacked(frame, NULL);
    }
}

/*  Max-size Publish frames, as fast as the broker takes them. */
static void *publish_flooder(void *arg)
{
    flood_t *f = arg;
    zsock_t *dealer = hostile_dealer(f->h);
    if (!dealer || !send_hello(dealer, 0)) {
        zsock_destroy(&dealer);
        return NULL;
    }
    for (uint64_t serial = 1; serial <= MAX_FRAMES && flooding(f); serial++) {
        size_t n = 0;
        zframe_t *frame = max_size_publish(serial, f->max_frame, &n);
        if (zframe_send(&frame, dealer, 0) == 0) {
            atomic_fetch_add(&f->counts.frames, 1);
            atomic_fetch_add(&f->counts.reports, n);
        } else {
            zframe_destroy(&frame);
        }
        drain_acks(f, dealer);
    }
    zsock_set_rcvtimeo(dealer, 1000); /* what the broker answered in time: the acks so far */
    drain_acks(f, dealer);
    zsock_destroy(&dealer);
    return NULL;
}

/*  Hello after Hello on a socket whose answers are never read: the
 *  broker's HelloAcks pile up towards it. */
static void *hello_looper(void *arg)
{
    flood_t *f = arg;
    zsock_t *dealer = hostile_dealer(f->h);
    if (dealer)
        zsock_set_rcvhwm(dealer, 1);
    for (int i = 0; dealer && i < MAX_HELLOS && flooding(f); i++)
        if (send_hello(dealer, 100))
            atomic_fetch_add(&f->counts.hellos, 1);
    zsock_destroy(&dealer);
    return NULL;
}

/*  Heartbeats, as fast as they go, on a session of their own. */
static void *heartbeater(void *arg)
{
    flood_t *f = arg;
    zsock_t *dealer = hostile_dealer(f->h);
    Caveat__Wire__Heartbeat heartbeat = CAVEAT__WIRE__HEARTBEAT__INIT;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_HEARTBEAT;
    frame.heartbeat = &heartbeat;
    bool ok = dealer && send_hello(dealer, 0);
    for (int i = 0; ok && i < MAX_HEARTBEATS && flooding(f); i++) {
        if (send_frame(dealer, &frame))
            atomic_fetch_add(&f->counts.heartbeats, 1);
        if (i % 1000 == 0)
            zsock_flush(dealer); /* answers (errors, if any) are not kept */
    }
    zsock_destroy(&dealer);
    return NULL;
}

/*  TCP connections that never send a byte. Not blocking: once the
 *  broker's accept queue is full the kernel holds connections back. */
static int open_idle(harness_t *h, int *fds, int n)
{
    const char *colon = strrchr(harness_endpoint(h), ':');
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)atoi(colon ? colon + 1 : "0")),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int opened = 0;
    for (int i = 0; i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (fd >= 0 && (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 || errno == EINPROGRESS))
            fds[opened++] = fd;
        else if (fd >= 0)
            close(fd);
    }
    return opened;
}

/* ------------------------------------------------------------------------ */
/*  Phases.                                                                 */

typedef void *(thread_fn)(void *);

static void run_flood(bench_victim_t *v, const options_t *opt, harness_t *h, flood_t *f,
                      phase_t *phase)
{
    thread_fn *const kinds[] = {publish_flooder, hello_looper};
    pthread_t threads[2 + HEARTBEATERS];
    int n = 0;
    f->deadline = bench_now_ns() + ms_to_ns(opt->seconds * 1000 + 5000);
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
        pthread_create(&threads[n++], NULL, kinds[i], f);
    for (int i = 0; i < HEARTBEATERS; i++)
        pthread_create(&threads[n++], NULL, heartbeater, f);
    int idle[IDLE_CONNECTIONS];
    f->counts.idle_open = open_idle(h, idle, IDLE_CONNECTIONS);
    zclock_sleep(200); /* the flood under way before the first round trip */
    measure(v, opt, h, phase);
    atomic_store(&f->stop, true);
    for (int i = 0; i < n; i++)
        pthread_join(threads[i], NULL);
    for (int i = 0; i < f->counts.idle_open; i++)
        close(idle[i]);
}

static void print_phase(const phase_t *p)
{
    printf("%-7s %8zu %6zu %9.2f %9.2f %9.2f %10.1f %10.1f\n", p->name, p->n, p->lost, p->p50_ms,
           p->p99_ms, p->max_ms, p->rss_kb / 1024.0, p->hwm_kb / 1024.0);
}

static double ratio(double flood, double quiet)
{
    return quiet > 0 ? flood / quiet : 0;
}

static void print_results(const phase_t phases[3], const flood_t *f, double load_before)
{
    printf("%-7s %8s %6s %9s %9s %9s %10s %10s\n", "phase", "reports", "lost", "p50 ms", "p99 ms",
           "max ms", "VmRSS MB", "VmHWM MB");
    for (int i = 0; i < 3; i++)
        print_phase(&phases[i]);
    const hostile_counts_t *c = &f->counts;
    printf("hostile " HOSTILE ": %" PRIuFAST64 " Publish frames (%" PRIuFAST64
           " tiny reports; acknowledged %" PRIuFAST64 " OK, %" PRIuFAST64 " refused), %" PRIuFAST64
           " Hellos never read, %" PRIuFAST64 " Heartbeats on %d connections, %d idle TCP "
           "connections\n",
           c->frames, c->reports, c->acks_ok, c->acks_refused, c->hellos, c->heartbeats,
           HEARTBEATERS, c->idle_open);
    printf("flood/quiet: p50 %.1fx, p99 %.1fx\n", ratio(phases[1].p50_ms, phases[0].p50_ms),
           ratio(phases[1].p99_ms, phases[0].p99_ms));
    bench_print_load(load_before);
}

static void show_broker_log(harness_t *h)
{
    char command[700];
    snprintf(command, sizeof command, "tail -n 20 %s >&2", harness_path(h, "broker.log"));
    fprintf(stderr, "flood_bench: caveatd is gone; the end of its log:\n");
    if (system(command) != 0)
        fprintf(stderr, "flood_bench: no log\n");
}

/* ------------------------------------------------------------------------ */

static bool parse(int argc, char **argv, options_t *opt)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            opt->seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--reports") && i + 1 < argc)
            opt->reports = atoi(argv[++i]);
        else
            return false;
    }
    return opt->seconds > 0 && opt->reports > 0;
}

static bool start_victim(harness_t *h, bench_victim_t *v)
{
    cv_error_t err = {0};
    v->subscriber = harness_client(h, SUBSCRIBER, NULL, 100, &err);
    v->publisher = v->subscriber ? harness_client(h, PUBLISHER, NULL, 0, &err) : NULL;
    v->report = harness_report("vulnerable_individual");
    v->tag = "flood-bench";
    v->timeout_ms = VICTIM_TIMEOUT_MS;
    if (!v->publisher || !v->report)
        fprintf(stderr, "flood_bench: %s\n", err.msg[0] ? err.msg : "no example report");
    return v->publisher && v->report;
}

static void stop_victim(bench_victim_t *v)
{
    cv_client_destroy(&v->publisher);
    cv_client_destroy(&v->subscriber);
    if (v->report)
        caveat__report__free_unpacked(v->report, NULL);
}

int main(int argc, char **argv)
{
    options_t opt = {.seconds = 3, .reports = 2000};
    if (!parse(argc, argv, &opt)) {
        fprintf(stderr, "usage: flood_bench [--seconds S] [--reports N]\n");
        return 2;
    }
    double load_before = bench_load_average();
    harness_t *h = harness_new();
    bench_victim_t v = {0};
    if (!h || !harness_start(h, NULL) || !start_victim(h, &v)) {
        stop_victim(&v);
        harness_destroy(&h);
        return 1;
    }
    printf("flood_bench: caveatd on %s, example policy; victim %s -> %s, hostile %s; %.1f s a "
           "phase\n",
           harness_endpoint(h), PUBLISHER, SUBSCRIBER, HOSTILE, opt.seconds);
    flood_t flood = {.h = h, .max_frame = cv_client_max_frame(v.publisher)};
    phase_t phases[3] = {{.name = "quiet"}, {.name = "flood"}, {.name = "after"}};
    measure(&v, &opt, h, &phases[0]);
    run_flood(&v, &opt, h, &flood, &phases[1]);
    measure(&v, &opt, h, &phases[2]);
    print_results(phases, &flood, load_before);
    if (phases[2].rss_kb == 0) /* caveatd is gone: say why, before the harness removes its log */
        show_broker_log(h);
    stop_victim(&v);
    harness_destroy(&h);
    return 0;
}
