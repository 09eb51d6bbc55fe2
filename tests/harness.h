/*  harness.h: end-to-end tests and benchmarks run the real caveatd.
 *
 *  A harness is a temporary directory holding copies of the example keys
 *  (secret ones 0600) and policy, and a caveatd process bound to a free
 *  loopback port (tcp://127.0.0.1:!, a random one), which it reports on stdout. */
#ifndef CV_HARNESS_H
#define CV_HARNESS_H

#include <stdbool.h>
#include <sys/types.h>

#include "caveat.h"
#include "cv_proto.h" /* internals: the schema, JSON, the wire protocol */

typedef struct harness_t harness_t;

harness_t *harness_new(void);
/*  Stops the broker if it runs and removes the directory. */
void harness_destroy(harness_t **self_p);

/*  DIR/name in a buffer owned by the harness (valid until the next call). */
const char *harness_path(harness_t *self, const char *name);
/*  Replaces DIR/policy.yaml with text. */
void harness_write_policy(harness_t *self, const char *text);

/*  Adds n councils in Hull to DIR/policy.yaml: council-0 .. council-(n-1),
 *  local authorities cleared to OFFICIAL-SENSITIVE, each with a new key
 *  whose secret certificate is DIR/council-N.cert_secret. */
bool harness_add_councils(harness_t *self, int n);

/*  The descriptor limit (soft and hard RLIMIT_NOFILE) caveatd is started
 *  with from now on; 0, the default: the harness's own. */
void harness_set_nofile(harness_t *self, int limit);

/*  DIR/data on a disk of its own, of bytes (a tmpfs, in a mount
 *  namespace of the test process's own). Call before the first start.
 *  False where the test may not mount (not root, no user namespaces):
 *  the caller skips. */
bool harness_small_disk(harness_t *self, size_t bytes);
/*  Fills that disk (DIR/data/filler, written until it is full): how many
 *  bytes it took. harness_free_disk removes the filler. */
size_t harness_fill_disk(harness_t *self);
void harness_free_disk(harness_t *self);
/*  Makes the filler bytes shorter: that much is free again. */
void harness_shrink_filler(harness_t *self, size_t bytes);

/*  Starts caveatd on DIR/policy.yaml and DIR/data, with extra arguments
 *  (NULL-terminated list, may be empty); waits until it is ready. */
bool harness_start(harness_t *self, const char *const *extra);
/*  SIGTERM and wait. True when caveatd exited 0 and its log holds no
 *  sanitizer report (the suite also runs under ASan and UBSan). */
bool harness_stop(harness_t *self);
/*  SIGKILL (a crash) and wait. */
void harness_kill(harness_t *self);
/*  Sends a signal (SIGHUP: reload). */
void harness_signal(harness_t *self, int sig);
const char *harness_endpoint(const harness_t *self);
pid_t harness_pid(const harness_t *self);
/*  Whether one of process pid's threads is called name
 *  (/proc/PID/task/TID/comm): a broker's, or this process's. */
bool harness_has_thread(pid_t pid, const char *name);

/*  A client of agency (its example key), on feed (NULL: direct queue). */
cv_client_t *harness_client(harness_t *self, const char *agency, const char *feed, uint32_t credit,
                            cv_error_t *err);

/*  A client of agency with config (its endpoint and keys filled in). */
cv_client_t *harness_client_with(harness_t *self, const char *agency, cv_client_config_t config,
                                 cv_error_t *err);

/*  A send-only client of agency (no queue, as `caveat publish` and `caveat
 *  admin` open), with libcaveat's default timeout. */
cv_client_t *harness_sender(harness_t *self, const char *agency, cv_error_t *err);

/*  An example report (examples/reports/NAME.json), parsed. */
Caveat__Report *harness_report(const char *name);

#endif
