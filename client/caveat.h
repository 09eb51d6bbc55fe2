/*  caveat.h: libcaveat, the C API for an agency's system to talk to
 *  caveatd (docs/protocol.md). One client is one CURVE-encrypted DEALER
 *  connection and one session on one queue of the agency.
 *
 *  A client is not thread-safe: use it from one thread at a time. Every
 *  call that waits takes a timeout and never blocks forever. Errors come
 *  back as one line in a cv_error_t; after the broker sends Error REVOKED or
 *  VERSION the session is over and every later call fails with that error.
 *
 *  The library reconnects by itself (ZeroMQ does) and opens the session
 *  again with a new Hello after a reconnect: a publish in flight is resent
 *  (safe, as every report has an id before it is sent) and the broker
 *  resends unacknowledged deliveries, which cv_client_receive drops when it
 *  has already returned them. A broker that refuses the agency's key
 *  (ZAP) ends the connection for good (libzmq does not retry): every call
 *  then fails with "...refused this agency's key..." until the client is
 *  destroyed and made again.
 */
#ifndef CAVEAT_H
#define CAVEAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cv_proto.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cv_client_t cv_client_t;

typedef struct {
    const char *endpoint;    /* "tcp://127.0.0.1:7400" */
    const char *server_cert; /* the broker's public certificate file (BROKER.cert) */
    const char *client_cert; /* the agency's secret certificate file (AGENCY.cert_secret) */
    const char *feed;        /* a screening feed's queue; NULL or "": the direct queue */
    uint32_t credit;         /* deliveries the broker may have unacknowledged; 0: 100 */
    bool publish_only;       /* sends only (publish, admin): no deliveries, takes no queue */
    int timeout_ms;          /* for the Hello handshake; 0: 5000 */
} cv_client_config_t;

/*  Checks the certificate files of config without connecting: both exist
 *  and hold valid keys, and the secret one is mode 0600 (no group or other
 *  access). A command line uses it to tell bad input from a failure.      */
bool cv_client_check_certs(const cv_client_config_t *config, cv_error_t *err);

/*  Connects, sends Hello and waits for HelloAck. NULL with err on a bad
 *  certificate, an unanswered Hello (for instance a key that is not in the
 *  policy: the CURVE handshake never completes) or a broker Error.        */
cv_client_t *cv_client_new(const cv_client_config_t *config, cv_error_t *err);
void cv_client_destroy(cv_client_t **self_p);

/*  The agency the broker authenticated, and its limit on a frame's size
 *  (both from HelloAck).                                                  */
const char *cv_client_agency(const cv_client_t *self);
uint32_t cv_client_max_frame(const cv_client_t *self);

/*  A report's outcome: report_id and reason are malloc'd (reason "" when
 *  accepted). status is a Caveat__Wire__Status, or CV_PUBLISH_PENDING when
 *  no PublishAck came for it (publish returned -1): it may or may not be
 *  stored, and publishing it again is safe.                               */
typedef struct {
    char *report_id;
    int status;
    char *reason;
} cv_publish_result_t;

enum { CV_PUBLISH_PENDING = -1 };

/*  Publishes n reports, split into batches that each fit HelloAck.max_frame,
 *  and waits (timeout_ms overall) until every batch is acknowledged, that is
 *  stored durably. A report too large for a frame on its own is refused
 *  locally (REFUSED_INVALID) and not sent. A report with an empty id first
 *  gets a new one (cv_report_id_new: "r-", time, random), written into the report, so
 *  that publishing the same reports again after a lost acknowledgement is
 *  idempotent: the report must own its strings as protobuf-c unpacking and
 *  cv_json_parse make them (its old id is free()d).
 *  Fills results[i] for each report (clear them with
 *  cv_publish_results_clear, whatever the return). Returns the number of
 *  refused reports, or -1 with err on a timeout, a transport failure or a
 *  broker Error.                                                          */
int cv_client_publish(cv_client_t *self, Caveat__Report *const *reports, size_t n,
                      cv_publish_result_t *results, int timeout_ms, cv_error_t *err);
void cv_publish_results_clear(cv_publish_result_t *results, size_t n);

/*  The next delivery not returned before: one whose seq is not above the
 *  highest already returned is dropped (the broker resends unacknowledged
 *  deliveries when a session opens). NULL on timeout with err->msg "", or
 *  NULL with err saying why (e.g. "broker: REVOKED: ...").
 *  The delivery is borrowed from the client: do not free it. It stays
 *  valid until the next call, on the same client, of cv_client_receive,
 *  cv_client_ack, cv_client_publish, cv_client_admin or
 *  cv_client_admin_args, or until cv_client_destroy; copy whatever must
 *  last longer (cv_client_ack(c, d->seq, &err) is fine: d->seq is read
 *  before the call).                                                      */
const Caveat__Wire__Delivery *cv_client_receive(cv_client_t *self, int timeout_ms, cv_error_t *err);

/*  Acknowledges every delivery with seq <= up_to (cumulative); up_to must
 *  not exceed the highest seq returned by cv_client_receive.              */
bool cv_client_ack(cv_client_t *self, uint64_t up_to, cv_error_t *err);

/*  An administrator's request ("stats" or "reload"): returns
 *  AdminReply.text (malloc'd) and sets *ok to AdminReply.ok, or NULL with
 *  err (e.g. "broker: FORBIDDEN: ..." for an agency that is not an
 *  administrator).                                                        */
char *cv_client_admin(cv_client_t *self, const char *command, bool *ok, int timeout_ms,
                      cv_error_t *err);
/*  The same with arguments: "backup" takes a directory (on the broker's
 *  machine, which must not exist yet); "purge" takes "dry-run" to list only. */
char *cv_client_admin_args(cv_client_t *self, const char *command, const char *const *args,
                           size_t n_args, bool *ok, int timeout_ms, cv_error_t *err);

/*  The name of a Caveat__Wire__Status ("REFUSED_INVALID") and of an Error
 *  code ("REVOKED"); "UNKNOWN" for other values.                          */
const char *cv_status_name(int status);
const char *cv_error_code_name(uint32_t code);

#ifdef __cplusplus
}
#endif
#endif
