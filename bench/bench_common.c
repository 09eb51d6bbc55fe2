/*  bench_common.c: what the broker benchmarks share. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <signal.h>
#include <unistd.h>

#include <czmq.h>

#include "bench_common.h"

void text_add(text_t *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->data + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            abort();
        if (t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        t->cap = (t->cap + (size_t)n) * 2 + 4096;
        t->data = realloc(t->data, t->cap);
        if (!t->data)
            abort();
    }
}

char *bench_find_program(const char *name)
{
    const char *path = getenv("PATH");
    text_t dirs = {0};
    text_add(&dirs, "%s:/usr/sbin:/usr/local/sbin", path ? path : "/usr/bin:/bin");
    char *save = NULL, *found = NULL;
    for (char *dir = strtok_r(dirs.data, ":", &save); dir && !found;
         dir = strtok_r(NULL, ":", &save)) {
        char candidate[4096];
        snprintf(candidate, sizeof candidate, "%s/%s", dir, name);
        if (access(candidate, X_OK) == 0)
            found = strdup(candidate);
    }
    free(dirs.data);
    return found;
}

int bench_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* ------------------------------------------------------------------------ */
/*  Reports: one JSON text, parsed with cv_json_parse, padded to a size.     */

static char *report_json(const char *id, const char *category, const char *area,
                         const char *summary, int narrative)
{
    static const char *const words[] = {
        "the subject",     "was seen",        "near the",
        "college",         "with associates", "and appeared",
        "withdrawn",       "family members",  "reported concerns about",
        "online activity", "in closed groups"};
    text_t t = {0};
    text_add(&t,
             "{\"id\": \"%s\", \"author\": \"PC 4471 Grant\", "
             "\"created\": \"2026-11-20T09:30:00Z\", \"category\": \"%s\", "
             "\"handling_level\": \"OFFICIAL-SENSITIVE\", \"grading\": {\"source\": \"B\", "
             "\"intelligence\": \"2\", \"handling_code\": \"2\"}, \"priority\": \"ROUTINE\", "
             "\"area\": \"%s\", \"subjects\": [{\"name\": \"Jordan Ellis\", "
             "\"date_of_birth\": \"2009-04-01\", \"address\": \"14 Example Street, Hull\", "
             "\"postcode\": \"HU3 2AB\", \"identifiers\": {\"pnc\": \"09/123456A\"}, "
             "\"vulnerability_factors\": [\"isolation\", \"online contact\"]}], "
             "\"location\": {\"name\": \"Community centre\", \"postcode\": \"HU3 2BQ\", "
             "\"latitude\": 53.7443, \"longitude\": -0.3326}, \"summary\": \"%s\", "
             "\"narrative\": \"",
             id, category, area, summary);
    for (int i = 0, len = 0; len < narrative; i++) {
        const char *w = words[i % (int)(sizeof words / sizeof *words)];
        text_add(&t, "%s ", w);
        len += (int)strlen(w) + 1;
    }
    text_add(&t,
             "end.\", \"source\": {\"type\": \"patrol\", \"reference\": \"SR/2026/0441\", "
             "\"notes\": \"reliable in the past\"}, \"indicators\": [\"online_radicalisation\"], "
             "\"tension\": {\"level\": 3, \"trend\": \"rising\"}, \"caveats\": [\"POLICE ONLY\"]}");
    return t.data;
}

static Caveat__Report *parse_report(const char *program, const char *json)
{
    cv_error_t err = {0};
    ProtobufCMessage *msg = cv_json_parse(cv_schema_report(), json, strlen(json), "<bench>", &err);
    if (!msg) {
        fprintf(stderr, "%s: generated report refused: %s\n", program, err.msg);
        exit(1);
    }
    return (Caveat__Report *)msg;
}

Caveat__Report *bench_make_report(const char *program, const char *id, const char *category,
                                  const char *area, const char *summary, int bytes)
{
    char *json = report_json(id, category, area, summary, 0);
    Caveat__Report *r = parse_report(program, json);
    int base = (int)caveat__report__get_packed_size(r) + 14;
    caveat__report__free_unpacked(r, NULL);
    free(json);
    json = report_json(id, category, area, summary, bytes - base - 8);
    r = parse_report(program, json);
    free(json);
    return r;
}

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void bench_sleep_until(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u),
                          .tv_nsec = (long)(ns % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

void bench_sort_ns(uint64_t *ns, size_t n)
{
    qsort(ns, n, sizeof *ns, cmp_u64);
}

double bench_quantile_ms(const uint64_t *sorted_ns, size_t n, double q)
{
    return n ? sorted_ns[(size_t)(q * (double)(n - 1) + 0.5)] / 1e6 : 0;
}

/*  Waits for the delivery of id until deadline (ns). */
static bool delivered(bench_victim_t *v, const char *id, uint64_t deadline)
{
    while (bench_now_ns() < deadline) {
        cv_error_t err = {0};
        int wait_ms = (int)((deadline - bench_now_ns()) / 1000000) + 1;
        const cv_delivery_t *d = cv_client_receive(v->subscriber, wait_ms, &err);
        if (!d)
            return false;
        bool mine = strcmp(d->report_id, id) == 0;
        cv_client_ack(v->subscriber, d->seq, &err);
        if (mine)
            return true;
    }
    return false;
}

uint64_t bench_round_trip(bench_victim_t *v)
{
    char id[96];
    snprintf(id, sizeof id, "%s-%d-%06llu", v->tag, (int)getpid(), (unsigned long long)v->serial++);
    free(v->report->id);
    v->report->id = strdup(id);
    cv_publish_result_t result = {0};
    cv_error_t err = {0};
    uint64_t start = bench_now_ns();
    int refused = cv_client_publish_one(v->publisher, v->report, &result, v->timeout_ms, &err);
    cv_publish_results_clear(&result, 1);
    if (refused != 0)
        return 0;
    bool ok = delivered(v, id, start + (uint64_t)v->timeout_ms * 1000000);
    return ok ? bench_now_ns() - start : 0;
}

char *bench_read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    text_t t = {0};
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        text_add(&t, "%.*s", (int)n, buf);
    fclose(f);
    return t.data;
}

char *bench_substitute(const char *text, const char *name, const char *value)
{
    char pattern[96];
    snprintf(pattern, sizeof pattern, "${%s}", name);
    text_t t = {0};
    const char *at;
    while ((at = strstr(text, pattern))) {
        text_add(&t, "%.*s%s", (int)(at - text), text, value);
        text = at + strlen(pattern);
    }
    text_add(&t, "%s", text);
    return t.data;
}

const char *bench_verdict(bool pass)
{
    return pass ? "pass" : "FAIL";
}

bool bench_start_broker_audit(harness_t *h, const char *sync, bool audit)
{
    const char *extra[] = {"--sync", sync, "--audit-log", audit ? "on" : "off", NULL};
    return harness_start(h, extra);
}

bool bench_start_broker(harness_t *h, const char *sync)
{
    return bench_start_broker_audit(h, sync, true);
}

/*  A throwaway P-256 certificate for 127.0.0.1 in n->dir (openssl CLI). */
bool bench_nats_certificate(const nats_server_t *n)
{
    char command[1024];
    snprintf(command, sizeof command,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout %s/server.key -out %s/server.pem -days 2 -subj /CN=localhost "
             "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 >%s/openssl.log 2>&1",
             n->dir, n->dir, n->dir);
    return system(command) == 0;
}

/*  nats-server on a free loopback port, configured by write_config. */
bool bench_nats_start(nats_server_t *n, const char *program, nats_config_fn *write_config)
{
    int port = bench_free_port();
    if (port < 0 || !write_config(n, port))
        return false;
    snprintf(n->url, sizeof n->url, "tls://127.0.0.1:%d", port);
    n->pid = fork();
    if (n->pid == 0) {
        char conf[128], log[128];
        snprintf(conf, sizeof conf, "%s/nats.conf", n->dir);
        snprintf(log, sizeof log, "%s/nats.log", n->dir);
        FILE *out = freopen(log, "w", stdout);
        if (out)
            dup2(STDOUT_FILENO, STDERR_FILENO);
        execl(program, program, "-c", conf, (char *)NULL);
        _exit(127);
    }
    return n->pid > 0;
}

void bench_remove_tree(const char *dir)
{
    char command[600];
    snprintf(command, sizeof command, "rm -rf '%s'", dir);
    if (system(command) != 0)
        fprintf(stderr, "bench: could not remove %s\n", dir);
}

/*  A fresh CURVE key pair as DIR/NAME.cert and NAME.cert_secret (0600). */
bool bench_make_key(harness_t *h, const char *name, char public_key[41])
{
    char secret_key[41], file[96];
    uint8_t public_bin[32], secret_bin[32];
    if (zmq_curve_keypair(public_key, secret_key) != 0 || !zmq_z85_decode(public_bin, public_key) ||
        !zmq_z85_decode(secret_bin, secret_key))
        return false;
    zcert_t *cert = zcert_new_from(public_bin, secret_bin);
    snprintf(file, sizeof file, "%s.cert", name);
    bool ok = cert && zcert_save(cert, harness_path(h, file)) == 0; /* and NAME.cert_secret */
    snprintf(file, sizeof file, "%s.cert_secret", name);
    ok = ok && chmod(harness_path(h, file), 0600) == 0;
    zcert_destroy(&cert);
    return ok;
}

/*  The agencies beyond the two of workload 1 (more of them), as YAML lines
 *  of the agencies mapping, and two rules like a partnership's. They never
 *  connect: fresh public keys whose secrets are thrown away. Four types in
 *  turn, two agencies an area, none serving the publisher's report area
 *  (hull). One rule sends the category the publisher publishes from police
 *  to councils in the same area, so routing has areas to look through; the
 *  subscriber (every area) gets every report under it too, every field
 *  shared, so its view is the same. */
static bool partnership(int more, char **agencies, char **rules)
{
    static const char *const types[] = {"police", "local_authority", "education", "health"};
    text_t a = {0}, r = {0};
    text_add(&a, "%s", "");
    for (int i = 0; i < more; i++) {
        char public_key[41], secret_key[41];
        if (zmq_curve_keypair(public_key, secret_key) != 0) {
            free(a.data);
            return false;
        }
        text_add(&a,
                 "\n  bench-partner-%05d: {organisation: partner-org-%05d, type: %s, "
                 "clearance: SECRET, areas: [area-%05d], key: \"%s\"}",
                 i, i / 4, types[i % 4], i / 2, public_key);
    }
    text_add(&r, "%s", "");
    if (more > 0)
        text_add(&r, "\n  - {name: police-to-councils, categories: [vulnerable_individual],"
                     " from_types: [police], to_types: [local_authority], same_area: true,"
                     " fields: {\"*\": share}}"
                     "\n  - {name: partners-on-tension, categories: [community_tension],"
                     " from_types: [local_authority], to_types: [police, local_authority],"
                     " same_area: true, fields: {summary: share}}");
    *agencies = a.data;
    *rules = r.data;
    return true;
}

/*  text with ${name} replaced by value; frees text. NULL if text is. */
static char *substituted(char *text, const char *name, const char *value)
{
    char *next = text && value ? bench_substitute(text, name, value) : NULL;
    free(text);
    return next;
}

/*  A harness with fresh keys for the broker and bench-publisher and
 *  bench-subscriber, and bench/data/throughput.yaml with their public keys:
 *  everything the publisher sends is released to the subscriber. With
 *  agencies > 2, the partnership above too. */
harness_t *bench_partnership_harness(int agencies, char *note, size_t size)
{
    static const char *const names[] = {"bench-publisher", "bench-subscriber"};
    harness_t *h = harness_new();
    char *policy = bench_read_file(BENCH_DATA_DIR "/throughput.yaml"), key[41];
    char *more_agencies = NULL, *more_rules = NULL;
    bool ok = h && policy && bench_make_key(h, "broker", key) &&
              partnership(agencies - 2, &more_agencies, &more_rules);
    for (int i = 0; ok && i < 2; i++)
        ok = (policy = substituted(policy, names[i],
                                   bench_make_key(h, names[i], key) ? key : NULL)) != NULL;
    policy = ok ? substituted(policy, "more-agencies", more_agencies) : policy;
    policy = ok ? substituted(policy, "more-rules", more_rules) : policy;
    ok = ok && policy;
    if (ok)
        harness_write_policy(h, policy);
    else
        snprintf(note, size, "cannot make keys, or read %s/throughput.yaml", BENCH_DATA_DIR);
    free(policy);
    free(more_agencies);
    free(more_rules);
    if (!ok)
        harness_destroy(&h);
    return h;
}

harness_t *bench_throughput_harness(char *note, size_t size)
{
    return bench_partnership_harness(2, note, size);
}

long bench_status_kb(pid_t pid, const char *name)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    size_t len = strlen(name);
    while (f && kb < 0 && fgets(line, sizeof line, f))
        if (strncmp(line, name, len) == 0 && line[len] == ':')
            kb = strtol(line + len + 1, NULL, 10);
    if (f)
        fclose(f);
    return kb;
}

double bench_load_average(void)
{
    double load[1];
    return getloadavg(load, 1) == 1 ? load[0] : -1;
}

void bench_print_load(double before)
{
    double after = bench_load_average();
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    /* the after figure counts this run's own processes: only the before
     * one says whether something else was running */
    bool comparable = before <= cores;
    printf("\nload average (1 min): %.2f before, %.2f after (this run's own included), %ld "
           "cores: %s\n",
           before, after, cores,
           comparable ? "comparable" : "NOT COMPARABLE (load exceeded the cores before the run)");
}

/*  The fields of a /proc/.../stat file from the third (state) on, in buf,
 *  or NULL. */
static const char *stat_fields(const char *path, char buf[1024])
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t n = fread(buf, 1, 1023, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    return p && p[1] ? p + 2 : NULL;
}

/*  CPU seconds (user + system) from a /proc/.../stat file. */
double bench_stat_cpu(const char *path)
{
    char buf[1024];
    const char *p = stat_fields(path, buf);
    unsigned long utime = 0, stime = 0;
    if (!p || sscanf(p, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
        return 0;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

/*  Minor page faults (field 10 of /proc/PID/stat) of a process, or 0. */
double bench_process_faults(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    const char *p = stat_fields(path, buf);
    unsigned long minflt = 0;
    if (!p || sscanf(p, "%*c %*d %*d %*d %*d %*d %*u %lu", &minflt) != 1)
        return 0;
    return (double)minflt;
}

double bench_process_cpu(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    return bench_stat_cpu(path);
}
