/*  bench_common.h: what the broker benchmarks share: a growing text
 *  buffer, clocks, finding programs and free ports, starting caveatd. */
#ifndef CV_BENCH_COMMON_H
#define CV_BENCH_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "harness.h"

typedef struct {
    char *data;
    size_t len, cap;
} text_t;

/*  Appends printf-style text, growing the buffer (aborts when out of memory). */
void text_add(text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*  A report in the benchmarks' shape (subject, location, grading, source,
 *  indicators, a narrative) whose packed form is about bytes once the
 *  broker has set its originator (about 14 bytes), parsed from JSON with
 *  cv_json_parse; exits naming program when the engine refuses it. */
Caveat__Report *bench_make_report(const char *program, const char *id, const char *category,
                                  const char *area, const char *summary, int bytes);

/*  CLOCK_MONOTONIC in nanoseconds. */
uint64_t bench_now_ns(void);
/*  Sleeps until that clock reads ns (a signal does not cut it short). */
void bench_sleep_until(uint64_t ns);

/*  Latencies: n of them (ns) sorted, and the one at quantile q (0 to 1)
 *  of the sorted, in ms (0 when there are none). */
void bench_sort_ns(uint64_t *ns, size_t n);
double bench_quantile_ms(const uint64_t *sorted_ns, size_t n, double q);

/*  A victim: one agency publishes a report, another receives it, one at
 *  a time; a round trip runs from the publish call to the delivery. */
typedef struct {
    cv_client_t *publisher, *subscriber;
    Caveat__Report *report; /* published again and again, each time under a new id */
    const char *tag;        /* the ids begin with it: which benchmark */
    int timeout_ms;         /* a publish, or a delivery, waits at most this long */
    uint64_t serial;
} bench_victim_t;

/*  One round trip in ns, or 0 when the report was refused or not
 *  delivered in time (other deliveries are acknowledged and skipped). */
uint64_t bench_round_trip(bench_victim_t *v);
/*  The program's path on PATH, /usr/sbin and /usr/local/sbin, or NULL (malloc'd). */
char *bench_find_program(const char *name);
/*  A TCP port on 127.0.0.1 free at the moment of asking, or -1. */
int bench_free_port(void);
/*  A whole file, NUL-terminated (malloc'd), or NULL. */
char *bench_read_file(const char *path);
/*  text with every ${name} replaced by value (malloc'd). */
char *bench_substitute(const char *text, const char *name, const char *value);
const char *bench_verdict(bool pass);
/*  A fresh CURVE key pair in the harness directory as NAME.cert and
 *  NAME.cert_secret (0600); its public key in Z85. */
bool bench_make_key(harness_t *h, const char *name, char public_key[41]);
/*  A harness for the two-agency workload of bench/data/throughput.yaml,
 *  with fresh keys; NULL with note set when it cannot be made. */
harness_t *bench_throughput_harness(char *note, size_t size);
/*  The same policy with agencies - 2 more agencies that never connect
 *  (four types, two an area) and two rules like a partnership's, none of
 *  which changes what the subscriber gets: what a partnership's size costs
 *  workload 1. agencies 2 is bench_throughput_harness. */
harness_t *bench_partnership_harness(int agencies, char *note, size_t size);
/*  A field of /proc/PID/status in kB (VmRSS, VmHWM), or -1. */
long bench_status_kb(pid_t pid, const char *name);
/*  CPU seconds (user + system) from a /proc/.../stat file, and of a process. */
double bench_stat_cpu(const char *path);
double bench_process_cpu(pid_t pid);
/*  Minor page faults of a process so far (a fault that maps a page in,
 *  no disk read: dear on a virtual machine), or 0. */
double bench_process_faults(pid_t pid);
/*  The 1-minute load average, or -1. */
double bench_load_average(void);
/*  The last line of every benchmark: the load average before (taken at
 *  the start) and now, and whether the run is comparable: a load above
 *  the core count before the run means something else was running, and
 *  the figures say nothing about a limit. (The after figure includes the
 *  run's own work, so it is printed, not judged.) */
void bench_print_load(double before);
/*  rm -rf DIR (a benchmark's own temporary directory). */
void bench_remove_tree(const char *dir);
/*  caveatd through the harness, with --sync SYNC. */
bool bench_start_broker(harness_t *h, const char *sync);
/*  The same with the audit log on or off (caveatd --audit-log). */
bool bench_start_broker_audit(harness_t *h, const char *sync, bool audit);

/*  A nats-server of a benchmark: its directory, URL and process. */
typedef struct {
    char dir[64];
    char url[64];
    pid_t pid;
} nats_server_t;

/*  Writes n->dir/nats.conf for a server on port. */
typedef bool(nats_config_fn)(const nats_server_t *n, int port);

/*  n->dir/server.key and server.pem: a throwaway certificate for TLS. */
bool bench_nats_certificate(const nats_server_t *n);
/*  Starts program (nats-server) with the configuration write_config writes. */
bool bench_nats_start(nats_server_t *n, const char *program, nats_config_fn *write_config);

#endif
