/*  faults_bench: what faults cost the real caveatd (through the end-to-end
 *  harness, the example policy, loopback only).
 *
 *  departed: COUNCILS more councils in the policy; each connects through
 *    libcaveat (a delivery session) and goes without a word. Then REPORTS
 *    reports go to every council and the broker waits past its ack timeout
 *    (2 s). Prints caveatd's VmRSS before the councils came, after they
 *    went, and after the fan-out and the timeout; the sessions left, and
 *    the deliveries sent again (resent).
 *
 *  connected: COUNCILS more councils, each connected through libcaveat
 *    (credit 10) and staying; one report goes to all of them. Prints how
 *    many got it and how fast, and caveatd's VmRSS per connection; and,
 *    before they came and while they stay, caveatd's CPU per publish call
 *    and per TCP connection opened and closed without a handshake.
 *
 *  disk: the data directory on a tmpfs of its own (a mount namespace: root,
 *    or user namespaces) of DISK_MB, --disk-reserve RESERVE_MB. A backlog
 *    of BACKLOG reports for hull-cc is stored, then drained by one libcaveat
 *    subscriber (credit 500, every delivery acknowledged): once with room
 *    on the disk, once with the disk filled. Prints both rates and their
 *    ratio; then frees the disk a MB at a time and prints how much was
 *    free (stats disk_free) when publishes were taken again.
 *
 *  backup: a store of --backup-mb MB (big vulnerable_individual reports
 *    for hull-cc, who is not connected), then a victim: hum-bcu-hull
 *    publishes community_tension reports one at a time and hull-college
 *    receives them. Its round trips (publish call to delivery) for
 *    BACKUP_IDLE_MS with the broker otherwise idle, then while `admin
 *    backup` copies the store. Prints both p50/p99, the p99 ratio against
 *    its target (under 3x), how long the backup took and the WAL's size
 *    before and after it.
 *
 *  Exits 0 whatever the figures; 1 when the run itself failed.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <czmq.h>

#include "bench_common.h"
#include "caveat.h"
#include "cv_proto.h" /* internals: the schema, JSON, the wire protocol */
#include "harness.h"

#define COUNCILS   2000
#define REPORTS    100
#define DISK_MB    192
#define RESERVE_MB 8
#define BACKLOG    20000
#define BATCH      500

#define BACKUP_MB         1024
#define BIG_REPORT        (256 * 1024) /* bytes: the reports that make the store */
#define BIG_BATCH         4            /* of them a publish */
#define BACKUP_IDLE_MS    3000
#define BACKUP_WAIT_MS    (3600 * 1000)
#define VICTIM_TIMEOUT_MS 10000
#define BACKUP_P99_TARGET 3.0 /* while a backup runs, at most this times the idle p99 */
#define MAX_ROUND_TRIPS   1000000

typedef struct {
    bool departed, connected, disk, backup;
    int councils, backlog, backup_mb;
} options_t;

static bool parse(int argc, char **argv, options_t *opt)
{
    for (int i = 1; i < argc; i++) {
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--only") == 0 && value) {
            opt->departed = strcmp(value, "departed") == 0;
            opt->connected = strcmp(value, "connected") == 0;
            opt->disk = strcmp(value, "disk") == 0;
            opt->backup = strcmp(value, "backup") == 0;
            if (!opt->departed && !opt->connected && !opt->disk && !opt->backup)
                return false;
            i++;
        } else if (strcmp(argv[i], "--councils") == 0 && value) {
            opt->councils = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--backlog") == 0 && value) {
            opt->backlog = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--backup-mb") == 0 && value) {
            opt->backup_mb = atoi(argv[++i]);
        } else {
            return false;
        }
    }
    return opt->councils > 0 && opt->backlog > 0 && opt->backup_mb > 0;
}

static cv_client_t *sender(harness_t *h, const char *agency)
{
    cv_error_t err = {0};
    cv_client_t *c = harness_sender(h, agency, &err);
    if (!c)
        fprintf(stderr, "faults_bench: %s: %s\n", agency, err.msg);
    return c;
}

/*  A counter of the broker's stats, or -1. */
static long stat_of(harness_t *h, const char *name)
{
    cv_client_t *admin = sender(h, "caveat-admin");
    bool ok = false;
    cv_error_t err = {0};
    char *text = admin ? cv_client_admin(admin, "stats", &ok, 5000, &err) : NULL;
    cv_client_destroy(&admin);
    char key[64];
    snprintf(key, sizeof key, "\"%s\":", name);
    const char *at = text && ok ? strstr(text, key) : NULL;
    long value = at ? atol(at + strlen(key)) : -1;
    free(text);
    return value;
}

/*  Publishes n new reports from the police BCU in batches: how many were
 *  taken. */
static int publish(harness_t *h, int n)
{
    cv_client_t *police = sender(h, "hum-bcu-hull");
    Caveat__Report *batch[BATCH];
    cv_publish_result_t results[BATCH];
    int taken = 0;
    for (int done = 0; police && done < n;) {
        int k = n - done < BATCH ? n - done : BATCH;
        for (int i = 0; i < k; i++) {
            batch[i] = harness_report("vulnerable_individual");
            free(batch[i]->id);
            batch[i]->id = NULL;
        }
        memset(results, 0, sizeof results);
        cv_error_t err = {0};
        int refused = cv_client_publish(police, (const Caveat__Report *const *)batch, (size_t)k,
                                        results, 60000, &err);
        taken += refused >= 0 ? k - refused : 0;
        cv_publish_results_clear(results, (size_t)k);
        for (int i = 0; i < k; i++)
            caveat__report__free_unpacked(batch[i], NULL);
        if (refused < 0)
            break;
        done += k;
    }
    cv_client_destroy(&police);
    return taken;
}

static double mb(long kb)
{
    return kb / 1024.0;
}

/* ------------------------------------------------------------------------ */

static bool run_departed(int councils)
{
    harness_t *h = harness_new();
    const char *const extra[] = {"--ack-timeout", "2", NULL};
    if (!h || !harness_add_councils(h, councils) || !harness_start(h, extra)) {
        harness_destroy(&h);
        return false;
    }
    long rss0 = bench_status_kb(harness_pid(h), "VmRSS");
    uint64_t t0 = bench_now_ns();
    int came = 0;
    for (int i = 0; i < councils; i++) {
        char agency[32];
        snprintf(agency, sizeof agency, "council-%d", i);
        cv_error_t err = {0};
        cv_client_t *c = harness_client(h, agency, NULL, 100, &err);
        came += c != NULL;
        cv_client_destroy(&c); /* gone without a word */
    }
    double connect_s = (double)(bench_now_ns() - t0) / 1e9;
    long rss1 = bench_status_kb(harness_pid(h), "VmRSS");
    int published = publish(h, REPORTS);
    zclock_sleep(3000); /* past the ack timeout */
    long rss2 = bench_status_kb(harness_pid(h), "VmRSS");
    long hwm = bench_status_kb(harness_pid(h), "VmHWM");
    printf("\ndeparted: %d councils connected and went (%.1f s), then %d reports to each\n", came,
           connect_s, published);
    printf("  %-52s %8.1f MB\n", "caveatd VmRSS before they came", mb(rss0));
    printf("  %-52s %8.1f MB\n", "VmRSS after they went", mb(rss1));
    printf("  %-52s %8.1f MB\n", "VmRSS after the fan-out and the ack timeout", mb(rss2));
    printf("  %-52s %8.1f MB\n", "VmHWM (peak)", mb(hwm));
    printf("  %-52s %8.2f\n", "VmRSS after / before", rss0 > 0 ? (double)rss2 / rss0 : 0);
    printf("  %-52s %8ld\n", "delivery sessions left", stat_of(h, "sessions"));
    printf("  %-52s %8ld\n", "deliveries sent again (resent)", stat_of(h, "resent"));
    printf("  %-52s %8ld\n", "deliveries sent", stat_of(h, "delivered"));
    harness_destroy(&h);
    return came == councils && published == REPORTS;
}

#define IDLE_CALLS 3000 /* publish calls of one report each, to measure the loop's cost */

/*  caveatd's CPU per publish call of one report (a grievance, which the
 *  policy releases to no council): with councils connected and idle, what
 *  their sessions cost each of the loop's turns. */
static double cpu_per_call(harness_t *h)
{
    cv_client_t *police = sender(h, "hum-bcu-hull");
    Caveat__Report *report = harness_report("grievance");
    double cpu0 = bench_process_cpu(harness_pid(h));
    int calls = 0;
    for (; police && calls < IDLE_CALLS; calls++) {
        cv_publish_result_t result = {0};
        cv_error_t err = {0};
        free(report->id);
        report->id = NULL; /* a new report each time */
        int refused = cv_client_publish(police, (const Caveat__Report *const *)&report, 1, &result,
                                        10000, &err);
        cv_publish_results_clear(&result, 1);
        if (refused != 0)
            break;
    }
    double cpu = bench_process_cpu(harness_pid(h)) - cpu0;
    caveat__report__free_unpacked(report, NULL);
    cv_client_destroy(&police);
    return calls == IDLE_CALLS ? cpu / calls : -1;
}

#define CHURN 5000 /* TCP connections opened and closed without a handshake */

/*  The CPU time of caveatd's loop, its main thread, in seconds: from
 *  schedstat, in nanoseconds, as /proc's clock ticks are too coarse here. */
static double loop_cpu(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/schedstat", (int)pid, (int)pid);
    FILE *f = fopen(path, "r");
    unsigned long long ns = 0;
    if (!f || fscanf(f, "%llu", &ns) != 1)
        ns = 0;
    if (f)
        fclose(f);
    return (double)ns / 1e9;
}

/*  The CPU of caveatd's loop per TCP connection that comes and goes
 *  without a word, which anyone who can reach the port can make: each ends
 *  in a DISCONNECTED event the loop matches to its session, if any. The
 *  loop's rate while idle (its timers walk the sessions), measured over a
 *  second before, is taken off. */
static double cpu_per_churn(harness_t *h)
{
    const char *colon = strrchr(harness_endpoint(h), ':');
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    pid_t pid = harness_pid(h);
    double idle0 = loop_cpu(pid);
    uint64_t t0 = bench_now_ns();
    usleep(1000000);
    double cpu0 = loop_cpu(pid), t1 = (double)(bench_now_ns() - t0) / 1e9;
    double idle_rate = (cpu0 - idle0) / t1;
    int made = 0;
    for (int i = 0; i < CHURN; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        made += fd >= 0 && connect(fd, (struct sockaddr *)&to, sizeof to) == 0;
        if (fd >= 0)
            close(fd);
        if (i % 100 == 99)
            usleep(2000); /* within the accept backlog */
    }
    usleep(500000); /* the last of them handled */
    double cpu = loop_cpu(pid) - cpu0;
    double seconds = (double)(bench_now_ns() - t0) / 1e9 - t1;
    return made == CHURN ? (cpu - idle_rate * seconds) / made : -1;
}

/*  Every council connected at once: this process holds two sockets a
 *  client (its DEALER and its monitor) and a descriptor each (main raised
 *  both limits before the first socket). */
static bool run_connected(int councils)
{
    harness_t *h = harness_new();
    if (!h || !harness_add_councils(h, councils) || !harness_start(h, NULL)) {
        harness_destroy(&h);
        return false;
    }
    double alone = cpu_per_call(h), churn_alone = cpu_per_churn(h);
    long rss0 = bench_status_kb(harness_pid(h), "VmRSS");
    cv_client_t **clients = calloc((size_t)councils, sizeof *clients);
    int came = 0;
    for (int i = 0; i < councils; i++) {
        char agency[32];
        snprintf(agency, sizeof agency, "council-%d", i);
        cv_error_t err = {0};
        clients[i] = harness_client(h, agency, NULL, 10, &err);
        came += clients[i] != NULL;
        if (!clients[i] && i < 3)
            fprintf(stderr, "faults_bench: %s: %s\n", agency, err.msg);
    }
    long rss1 = bench_status_kb(harness_pid(h), "VmRSS");
    double among = cpu_per_call(h), churn_among = cpu_per_churn(h);
    uint64_t t0 = bench_now_ns();
    int published = publish(h, 1), got = 0;
    double last_s = 0;
    for (int i = 0; i < councils; i++) {
        cv_error_t err = {0};
        const cv_delivery_t *d = clients[i] ? cv_client_receive(clients[i], 10000, &err) : NULL;
        if (d) {
            got++;
            last_s = (double)(bench_now_ns() - t0) / 1e9;
            cv_client_ack(clients[i], d->seq, &err);
        }
    }
    long rss2 = bench_status_kb(harness_pid(h), "VmRSS");
    printf("\nconnected: %d of %d councils connected at once; one report to all of them\n", came,
           councils);
    printf("  %-52s %8d of %d\n", "received it", got, came);
    printf("  %-52s %8.3f s\n", "publish to the last one read", last_s);
    printf("  %-52s %8.1f MB\n", "caveatd VmRSS before they came", mb(rss0));
    printf("  %-52s %8.1f MB\n", "VmRSS with them connected", mb(rss1));
    printf("  %-52s %8.1f MB\n", "VmRSS after the fan-out", mb(rss2));
    printf("  %-52s %8.1f KB\n", "VmRSS per connection",
           came > 0 ? (double)(rss1 - rss0) / came : 0);
    printf("  %-52s %8.1f us\n", "caveatd CPU per publish call, nobody connected", alone * 1e6);
    printf("  %-52s %8.1f us\n", "the same with them connected and idle", among * 1e6);
    if (alone > 0 && among > 0)
        printf("  %-52s %8.2f\n", "ratio (idle sessions' cost on a turn)", among / alone);
    printf("  %-52s %8.1f us\n", "caveatd loop CPU per TCP connection, nobody connected",
           churn_alone * 1e6);
    printf("  %-52s %8.1f us\n", "the same with them connected", churn_among * 1e6);
    if (churn_alone > 0 && churn_among > 0)
        printf("  %-52s %8.2f\n", "ratio (sessions' cost on a connection's end)",
               churn_among / churn_alone);
    for (int i = 0; i < councils; i++)
        cv_client_destroy(&clients[i]);
    free(clients);
    harness_destroy(&h);
    return came == councils && got == came && published == 1;
}

/*  Receives and acknowledges until n came or none came for a second:
 *  deliveries a second. */
static double drain(harness_t *h, int n, int *received)
{
    cv_error_t err = {0};
    cv_client_t *c = harness_client(h, "hull-cc", NULL, 500, &err);
    *received = 0;
    uint64_t t0 = bench_now_ns(), t1 = t0;
    const cv_delivery_t *d;
    while (c && *received < n && (d = cv_client_receive(c, 1000, &err))) {
        (*received)++;
        if (bench_now_ns() - t1 > 200000000 && t1 > t0)
            fprintf(stderr, "gap %.0f ms at %d seq %llu\n", (bench_now_ns() - t1) / 1e6, *received,
                    (unsigned long long)d->seq);
        t1 = bench_now_ns();
        cv_client_ack(c, d->seq, &err);
    }
    if (*received < n)
        fprintf(stderr, "drain stopped: %s\n", err.msg);
    cv_client_destroy(&c);
    return t1 > t0 ? *received / ((double)(t1 - t0) / 1e9) : 0;
}

/*  Frees the filled disk a MB at a time until a publish is taken: the
 *  bytes free (the reserve not counted) when it was. */
static long free_needed(harness_t *h)
{
    for (int mbs = 1; mbs <= DISK_MB; mbs++) {
        harness_shrink_filler(h, 1024 * 1024);
        zclock_sleep(150); /* the broker looks every 100 ms */
        if (stat_of(h, "disk_short") == 0) {
            long free_bytes = stat_of(h, "disk_free");
            return publish(h, 1) == 1 ? free_bytes + RESERVE_MB * 1024L * 1024 : -1;
        }
    }
    return -1;
}

static bool run_disk(int backlog)
{
    harness_t *h = harness_new();
    char reserve[16];
    snprintf(reserve, sizeof reserve, "%d", RESERVE_MB);
    const char *const extra[] = {"--disk-reserve", reserve, NULL};
    if (!h || !harness_small_disk(h, (size_t)DISK_MB << 20)) {
        printf("\ndisk: skipped: cannot mount a tmpfs here (not root, no user namespaces)\n");
        harness_destroy(&h);
        return true;
    }
    if (!harness_start(h, extra)) {
        harness_destroy(&h);
        return false;
    }
    int stored_room = publish(h, backlog), got_room = 0;
    double rate_room = drain(h, stored_room, &got_room);
    long dropped_room = stat_of(h, "dropped");
    int stored_full = publish(h, backlog), got_full = 0;
    size_t filled = harness_fill_disk(h);
    zclock_sleep(300);
    int refused = publish(h, 1) == 0;
    double rate_full = drain(h, stored_full, &got_full);
    long dropped_full = stat_of(h, "dropped") - dropped_room;
    long recovered_at = free_needed(h);
    printf("\ndisk: a %d MB tmpfs, --disk-reserve %d; hull-cc drains a backlog of %d reports\n",
           DISK_MB, RESERVE_MB, backlog);
    printf("  %-52s %8d of %d, %8.0f /s\n", "with room: delivered", got_room, stored_room,
           rate_room);
    printf("  %-52s %8d of %d, %8.0f /s\n", "disk full: delivered", got_full, stored_full,
           rate_full);
    printf("  %-52s %8ld, %ld\n", "sends that failed (with room, full)", dropped_room,
           dropped_full);
    printf("  %-52s %8.2f\n", "full / room", rate_room > 0 ? rate_full / rate_room : 0);
    printf("  %-52s %8.1f MB (a publish %s)\n", "filler written", filled / 1048576.0,
           refused ? "was refused" : "WAS TAKEN");
    printf("  %-52s %8.1f MB (2 x reserve + 1 MB)\n", "free when publishes were taken again",
           recovered_at / 1048576.0);
    harness_destroy(&h);
    return got_room == stored_room && got_full == stored_full && refused && recovered_at > 0;
}

/* ------------------------------------------------------------------------ */
/*  A backup while another agency publishes and receives.                   */

/*  Stores big reports until about mb MB went in: how many MB did. */
static int fill_store(harness_t *h, int mb)
{
    cv_client_t *police = sender(h, "hum-bcu-hull");
    Caveat__Report *batch[BIG_BATCH];
    for (int i = 0; i < BIG_BATCH; i++)
        batch[i] = bench_make_report("faults_bench", "fb-000000000000", "vulnerable_individual",
                                     "hull", "backup filler", BIG_REPORT);
    int64_t stored = 0;
    for (int serial = 0; police && stored < (int64_t)mb << 20;) {
        for (int i = 0; i < BIG_BATCH; i++) {
            free(batch[i]->id);
            batch[i]->id = NULL;
            if (asprintf(&batch[i]->id, "fb-%d-%08d", (int)getpid(), serial++) < 0)
                abort();
        }
        cv_publish_result_t results[BIG_BATCH] = {0};
        cv_error_t err = {0};
        int refused = cv_client_publish(police, (const Caveat__Report *const *)batch, BIG_BATCH,
                                        results, 60000, &err);
        cv_publish_results_clear(results, BIG_BATCH);
        if (refused != 0) {
            fprintf(stderr, "faults_bench: filling the store: %s\n",
                    refused < 0 ? err.msg : "a report was refused");
            break;
        }
        stored += BIG_BATCH * BIG_REPORT;
    }
    for (int i = 0; i < BIG_BATCH; i++)
        caveat__report__free_unpacked(batch[i], NULL);
    cv_client_destroy(&police);
    return (int)(stored >> 20);
}

/*  The backup, asked for in a thread: its admin call waits for the reply. */
typedef struct {
    harness_t *h;
    char dir[600];
    atomic_bool done;
    bool ok;
    char *text;
    uint64_t took_ns;
} backup_call_t;

static void *backup_thread(void *arg)
{
    backup_call_t *call = arg;
    cv_client_t *admin = sender(call->h, "caveat-admin");
    const char *args[] = {call->dir};
    cv_error_t err = {0};
    uint64_t t0 = bench_now_ns();
    call->text =
        admin ? cv_client_admin_args(admin, "backup", args, 1, &call->ok, BACKUP_WAIT_MS, &err)
              : NULL;
    call->took_ns = bench_now_ns() - t0;
    if (!call->text)
        call->text = strdup(err.msg);
    cv_client_destroy(&admin);
    atomic_store(&call->done, true);
    return NULL;
}

/*  Round trips until until_ns, or until *done: p50 and p99 in ms. */
typedef struct {
    size_t n, lost;
    double p50_ms, p99_ms;
} latency_t;

static latency_t victim_while(bench_victim_t *v, uint64_t until_ns, atomic_bool *done)
{
    latency_t l = {0};
    uint64_t *times = calloc(MAX_ROUND_TRIPS, sizeof *times);
    while (bench_now_ns() < until_ns && !(done && atomic_load(done)) &&
           l.n + l.lost < MAX_ROUND_TRIPS) {
        uint64_t ns = bench_round_trip(v);
        if (ns)
            times[l.n++] = ns;
        else
            l.lost++;
    }
    bench_sort_ns(times, l.n);
    l.p50_ms = bench_quantile_ms(times, l.n, 0.50);
    l.p99_ms = bench_quantile_ms(times, l.n, 0.99);
    free(times);
    return l;
}

static double file_mb(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size / 1048576.0 : 0;
}

static bool run_backup(int backup_mb)
{
    harness_t *h = harness_new();
    if (!h || !harness_start(h, NULL)) {
        harness_destroy(&h);
        return false;
    }
    char wal[700];
    snprintf(wal, sizeof wal, "%s/caveat.db-wal", harness_path(h, "data"));
    uint64_t t0 = bench_now_ns();
    int stored_mb = fill_store(h, backup_mb);
    double fill_s = (bench_now_ns() - t0) / 1e9;
    cv_error_t err = {0};
    bench_victim_t v = {.tag = "faults-bench", .timeout_ms = VICTIM_TIMEOUT_MS};
    v.subscriber = harness_client(h, "hull-college", NULL, 100, &err);
    v.publisher = v.subscriber ? harness_client(h, "hum-bcu-hull", NULL, 0, &err) : NULL;
    v.report = harness_report("community_tension");
    bool ok = v.publisher && v.report && stored_mb >= backup_mb;
    latency_t idle = {0}, during = {0};
    backup_call_t call = {.h = h};
    double wal_before = 0;
    if (ok) {
        bench_round_trip(&v); /* the college's queue made */
        idle = victim_while(&v, bench_now_ns() + BACKUP_IDLE_MS * 1000000ull, NULL);
        wal_before = file_mb(wal);
        snprintf(call.dir, sizeof call.dir, "%s", harness_path(h, "backup"));
        pthread_t thread;
        ok = pthread_create(&thread, NULL, backup_thread, &call) == 0;
        if (ok) {
            during = victim_while(&v, UINT64_MAX, &call.done);
            pthread_join(thread, NULL);
        }
    }
    double ratio = idle.p99_ms > 0 ? during.p99_ms / idle.p99_ms : 0;
    printf("\nbackup: a store of %d MB (made in %.1f s); hum-bcu-hull -> hull-college round "
           "trips\n",
           stored_mb, fill_s);
    printf("  %-40s %8zu, %2zu lost, p50 %8.2f ms, p99 %8.2f ms\n", "idle", idle.n, idle.lost,
           idle.p50_ms, idle.p99_ms);
    printf("  %-40s %8zu, %2zu lost, p50 %8.2f ms, p99 %8.2f ms\n", "while the backup runs",
           during.n, during.lost, during.p50_ms, during.p99_ms);
    printf("  %-40s %8.2f (target < %.0f): %s\n", "p99 backup / idle", ratio, BACKUP_P99_TARGET,
           bench_verdict(ratio > 0 && ratio < BACKUP_P99_TARGET));
    printf("  %-40s %8.1f s: %s\n", "the backup took", call.took_ns / 1e9,
           call.text ? call.text : "not run");
    printf("  %-40s %8.1f MB when the backup began, %.1f MB after\n", "the WAL file", wal_before,
           file_mb(wal));
    ok = ok && call.ok && during.n > 0;
    free(call.text);
    cv_client_destroy(&v.publisher);
    cv_client_destroy(&v.subscriber);
    if (v.report)
        caveat__report__free_unpacked(v.report, NULL);
    harness_destroy(&h);
    return ok;
}

int main(int argc, char **argv)
{
    options_t opt = {.councils = COUNCILS, .backlog = BACKLOG, .backup_mb = BACKUP_MB};
    if (!parse(argc, argv, &opt)) {
        fprintf(stderr, "usage: faults_bench [--only departed|connected|disk|backup] "
                        "[--councils N] [--backlog N] [--backup-mb N]\n");
        return 2;
    }
    /* before the first socket: libzmq fixes its socket limit then */
    struct rlimit files;
    getrlimit(RLIMIT_NOFILE, &files);
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
    zsys_set_max_sockets(0); /* as many as the descriptor limit allows */
    setvbuf(stdout, NULL, _IOLBF, 0);
    bool all = !opt.departed && !opt.connected && !opt.disk && !opt.backup, ok = true;
    double load0 = bench_load_average();
    if (all || opt.departed)
        ok = run_departed(opt.councils) && ok;
    if (all || opt.connected)
        ok = run_connected(opt.councils) && ok;
    if (all || opt.disk)
        ok = run_disk(opt.backlog) && ok;
    if (all || opt.backup)
        ok = run_backup(opt.backup_mb) && ok;
    bench_print_load(load0);
    return ok ? 0 : 1;
}
