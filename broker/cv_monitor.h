/*  cv_monitor.h: an HTTP listener for monitoring (caveatd --monitor),
 *  off unless asked for.
 *
 *  GET /metrics answers the broker's counters in the Prometheus text
 *  format; GET /healthz answers 200 "ok" while the broker's loop turns and
 *  its store works, else 503 with the reason. Anything else is 404, and
 *  any method but GET and HEAD 405. Nothing served says anything about a
 *  report or a key: counts only.
 *
 *  The listener runs in libmicrohttpd's own thread and never touches the
 *  broker: the loop hands it a snapshot (cv_monitor_publish), which it
 *  serves under a mutex. A snapshot older than STALE_MS means the loop
 *  stopped turning: /healthz says so.
 */
#ifndef CV_MONITOR_H
#define CV_MONITOR_H

#include <stdbool.h>

#include "cv_proto.h"

typedef struct cv_monitor_t cv_monitor_t;

/*  Listens on address, "HOST:PORT" (an IPv4 address) or "PORT" (then
 *  127.0.0.1). NULL with err when it cannot. */
cv_monitor_t *cv_monitor_new(const char *address, cv_error_t *err);
void cv_monitor_destroy(cv_monitor_t **self_p);

/*  The address actually listened on ("127.0.0.1:9400"; port 0 picks one). */
const char *cv_monitor_address(const cv_monitor_t *self);

/*  A new snapshot: metrics, in the Prometheus text format, and NULL when
 *  healthy or why not. Both are copied. */
void cv_monitor_publish(cv_monitor_t *self, const char *metrics, const char *unhealthy);

#endif
