/*  caveat.h: libcaveat, the C API for an agency's system to talk to
 *  caveatd (docs/protocol.md). One client is one CURVE-encrypted DEALER
 *  connection and one session on one queue of the agency.
 *
 *  This is the installed public header: it names libcaveat's own types and
 *  the report schema, nothing else. Reports cross the API as the
 *  protobuf-c types of one installed, versioned schema header,
 *  caveat/report.pb-c.h (generated from proto/report.proto): build them
 *  with caveat__report__init or caveat__report__unpack, read them as plain
 *  structs. The wire protocol's types stay inside the library.
 *
 *  Threads: a client is used by one thread at a time (calls on one client
 *  must not overlap); different clients may be used from different threads
 *  at once. Functions that take no client (cv_client_check_certs,
 *  cv_status_name, cv_error_code_name, cv_code_name, caveat_version) may be
 *  called from any thread at any time.
 *
 *  Waiting: every call that waits takes a timeout in milliseconds and never
 *  blocks forever; timeout 0 does what can be done at once and returns.
 *  For an event loop, cv_client_fd gives a descriptor to poll.
 *
 *  Errors come back in a cv_error_t: a code (cv_code_t, caveat/error.h)
 *  and one line of text. After the broker sends Error REVOKED or VERSION
 *  the session is over and every later call fails with CV_ERR_CLOSED.
 *
 *  Signals: libcaveat installs no signal handler. czmq, which it uses,
 *  would catch SIGINT and SIGTERM when first used; libcaveat puts back
 *  whatever handlers the application had.
 *
 *  The library reconnects by itself (ZeroMQ does) and opens the session
 *  again with a new Hello after a reconnect: a publish in flight is resent
 *  (safe, as every report has an id before it is sent) and the broker
 *  resends unacknowledged deliveries, which cv_client_receive drops when it
 *  has already returned them. A broker that refuses the agency's key
 *  (ZAP) ends the connection for good (libzmq does not retry): every call
 *  then fails with CV_ERR_REFUSED_KEY until the client is destroyed and
 *  made again.
 *
 *  Memory: libzmq's I/O thread receives each frame (a Deliver of up to 1
 *  MB) into a buffer of its own, freed by the thread that reads it. With
 *  glibc's defaults those pages go back to the system at each free and
 *  are faulted in again for the next frame. libcaveat leaves the process's
 *  allocator alone; a busy subscriber does well to keep them, as caveat
 *  and caveatd do: mallopt(M_MMAP_THRESHOLD, 4 << 20) and
 *  mallopt(M_TRIM_THRESHOLD, 32 << 20) before its first client.
 */
#ifndef CAVEAT_H
#define CAVEAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "caveat/error.h"
#include "caveat/report.pb-c.h"

/*  The library's version, the one version of the whole project (CMake
 *  reads it from here). The SONAME follows MAJOR: libcaveat.so.0.        */
#define CAVEAT_VERSION_MAJOR  0
#define CAVEAT_VERSION_MINOR  2
#define CAVEAT_VERSION_PATCH  0
#define CAVEAT_VERSION_STRING "0.2.0"

#if defined(CAVEAT_BUILDING) && defined(__GNUC__)
#define CAVEAT_EXPORT __attribute__((visibility("default")))
#else
#define CAVEAT_EXPORT
#endif

#ifdef __cplusplus
extern "C" {
#endif

/*  The version of the library linked at run time ("0.2.0"), to compare
 *  with the CAVEAT_VERSION_STRING compiled against. Any thread.          */
CAVEAT_EXPORT const char *caveat_version(void);

/*  "TIMEOUT" for CV_ERR_TIMEOUT, and so on; "UNKNOWN" for other values.
 *  Any thread.                                                            */
CAVEAT_EXPORT const char *cv_code_name(int code);

typedef struct cv_client_t cv_client_t;

/*  Changes of the connection under a client. */
typedef enum {
    CV_STATE_CONNECTED = 1,    /* a CURVE handshake succeeded: the broker accepted the key */
    CV_STATE_DISCONNECTED = 2, /* the connection dropped; ZeroMQ reconnects by itself */
    CV_STATE_REFUSED = 3,      /* the broker refused the agency's key: no more retries */
} cv_client_state_t;

typedef void(cv_client_state_fn)(cv_client_t *client, cv_client_state_t state, void *arg);

typedef struct {
    const char *endpoint;         /* "tcp://127.0.0.1:7400" */
    const char *server_cert;      /* the broker's public certificate file (BROKER.cert) */
    const char *client_cert;      /* the agency's secret certificate file (AGENCY.cert_secret) */
    const char *feed;             /* a screening feed's queue; NULL or "": the direct queue */
    uint32_t credit;              /* deliveries the broker may have unacknowledged; 0: 100 */
    bool publish_only;            /* sends only (publish, admin): no deliveries, takes no queue */
    int timeout_ms;               /* for the Hello handshake; 0: 5000 */
    cv_client_state_fn *on_state; /* NULL, or as cv_client_set_state_callback from the start,
                                     so that cv_client_new's own handshake is told too */
    void *on_state_arg;
    bool receipts; /* ask for a receipt of each acknowledged delivery: cv_client_receipt */
} cv_client_config_t;

/*  Checks the certificate files of config without connecting: both exist
 *  and hold valid keys, and the secret one gives group and others no
 *  access (0600 and 0400 do). A command line uses it to tell bad input from a failure
 *  (CV_ERR_BAD_INPUT). Any thread.                                        */
CAVEAT_EXPORT bool cv_client_check_certs(const cv_client_config_t *config, cv_error_t *err);

/*  Connects, sends Hello and waits for HelloAck. NULL with err on a bad
 *  configuration or certificate (CV_ERR_BAD_INPUT), a broker that never
 *  answered (CV_ERR_UNREACHABLE: not running, a wrong address or a wrong
 *  broker certificate), a key the broker refused (CV_ERR_REFUSED_KEY: not
 *  in the policy), a connection that opened but no HelloAck in time
 *  (CV_ERR_TIMEOUT), or a broker Error (CV_ERR_BROKER).
 *  Any thread; the client then belongs to one thread at a time.          */
CAVEAT_EXPORT cv_client_t *cv_client_new(const cv_client_config_t *config, cv_error_t *err);
/*  Sends a pending acknowledgement (best effort) and closes the
 *  connection, waiting at most a second for frames still queued. Sets
 *  *self_p to NULL; NULL is fine. Not while another call on it runs.
 *  Frames still queued are libcaveat's buffers, handed back to it when
 *  libzmq lets them go: a program that loads libcaveat with dlopen keeps
 *  it loaded while it still uses ZeroMQ (czmq ends its context at exit). */
CAVEAT_EXPORT void cv_client_destroy(cv_client_t **self_p);

/*  The agency the broker authenticated, and its limit on a frame's size
 *  (both from HelloAck). The client's thread.                             */
CAVEAT_EXPORT const char *cv_client_agency(const cv_client_t *self);
CAVEAT_EXPORT uint32_t cv_client_max_frame(const cv_client_t *self);

/*  A report's outcome. The values of status are those of the wire
 *  protocol's Status (docs/protocol.md), and CV_PUBLISH_PENDING when no
 *  PublishAck came for it (publish returned -1): it may or may not be
 *  stored, and publishing it again with report_id as its id is safe.     */
typedef enum {
    CV_PUBLISH_PENDING = -1,
    CV_PUBLISH_OK = 0,
    CV_PUBLISH_REFUSED_SPOOFED_ORIGINATOR = 1, /* originator names another agency */
    CV_PUBLISH_REFUSED_INVALID = 2,            /* not a valid report, or too large */
    CV_PUBLISH_REFUSED_DUPLICATE = 3,          /* the id is taken by a different report */
    CV_PUBLISH_REFUSED_UNAVAILABLE = 4,        /* the store cannot take it now: retry later */
} cv_publish_status_t;

/*  report_id and reason are malloc'd (reason "" when accepted). report_id
 *  is the report's id, or the one the library gave a report without one. */
typedef struct {
    char *report_id;
    int status; /* a cv_publish_status_t */
    char *reason;
} cv_publish_result_t;

/*  Publishes n reports, split into batches that each fit HelloAck.max_frame,
 *  and waits (timeout_ms overall) until every batch is acknowledged, that is
 *  stored durably. A report too large for a frame on its own is refused
 *  locally (REFUSED_INVALID) and not sent.
 *
 *  The reports are only read, never changed. A report with an empty or
 *  NULL id is sent with a new one ("r-", time, random), returned in
 *  results[i].report_id: to publish it again after a lost acknowledgement
 *  (a retry that stays idempotent) set its id to that value first.
 *
 *  Fills results[i] for each report (clear them with
 *  cv_publish_results_clear, whatever the return). Returns the number of
 *  refused reports, or -1 with err on a timeout (CV_ERR_TIMEOUT), a
 *  transport failure or a broker Error. The client's thread.              */
CAVEAT_EXPORT int cv_client_publish(cv_client_t *self, const Caveat__Report *const *reports,
                                    size_t n, cv_publish_result_t *results, int timeout_ms,
                                    cv_error_t *err);
/*  Pipelined publishing: a publisher that must not wait for one
 *  publish's PublishAck (its durable store) before sending the next.
 *  cv_client_publish_start sends the reports now (batches go while fewer
 *  than 8 are unacknowledged over all publishes in flight; the rest go as
 *  acks come, in any call that waits on the network) and returns a ticket
 *  (> 0), or -1 with err. reports and results must stay valid, and
 *  unchanged, until cv_client_publish_finish for that ticket, or
 *  cv_client_destroy, which leaves the results of unfinished publishes
 *  CV_PUBLISH_PENDING with their ids. At most 64 publishes are in flight.
 *  cv_client_publish_done reads what has arrived without waiting, and says
 *  whether finish would return at once. cv_client_publish_finish waits
 *  (timeout_ms) for the ticket's acks and returns as cv_client_publish
 *  does; the ticket is then gone, whatever the outcome. cv_client_publish
 *  is start and finish. The client's thread.                              */
CAVEAT_EXPORT int64_t cv_client_publish_start(cv_client_t *self,
                                              const Caveat__Report *const *reports, size_t n,
                                              cv_publish_result_t *results, cv_error_t *err);
CAVEAT_EXPORT bool cv_client_publish_done(cv_client_t *self, int64_t ticket);
CAVEAT_EXPORT int cv_client_publish_finish(cv_client_t *self, int64_t ticket, int timeout_ms,
                                           cv_error_t *err);
/*  The same for one report: cv_client_publish(self, &report, 1, ...).    */
CAVEAT_EXPORT int cv_client_publish_one(cv_client_t *self, const Caveat__Report *report,
                                        cv_publish_result_t *result, int timeout_ms,
                                        cv_error_t *err);
/*  Frees what results hold. Any thread that owns results.                 */
CAVEAT_EXPORT void cv_publish_results_clear(cv_publish_result_t *results, size_t n);

/*  Feedback from a recipient on a report this agency published.          */
typedef struct {
    const char *report_id; /* the report it is on: this agency's */
    const char *from;      /* the agency that sent it, as the broker authenticated it */
    const char *value;     /* "useful", "not_useful", "action_taken" or "seen" */
    const char *text;      /* the sender's words, or "" */
    const char *time;      /* when the broker stored it: RFC 3339, UTC */
} cv_feedback_note_t;

/*  A delivery: a report released to this agency, in its redacted view,
 *  or (feedback not NULL) feedback on one of the agency's own reports.
 *  Both are acknowledged alike, by seq.                                  */
typedef struct {
    uint64_t seq;             /* per (agency, queue): 1, 2, 3, ... to acknowledge */
    const char *report_id;    /* the report's id */
    const char *const *rules; /* the entries its view shows released it */
    size_t n_rules;
    const char *feed;                   /* the screening feed that released it, or NULL */
    const Caveat__Report *report;       /* the recipient's view; NULL if the broker sent none */
    const cv_feedback_note_t *feedback; /* feedback instead of a report, or NULL; then
                                           report is NULL and rules empty */
} cv_delivery_t;

/*  The next delivery not returned before: one whose seq is not above the
 *  highest already returned is dropped (the broker resends unacknowledged
 *  deliveries when a session opens). NULL when none came within timeout_ms
 *  (err->code CV_ERR_TIMEOUT, err->msg ""), or NULL with err saying why
 *  (e.g. CV_ERR_BROKER, "broker: REVOKED: ..."). timeout_ms 0 never waits.
 *  The delivery is borrowed from the client: do not free it. It stays
 *  valid until the next call, on the same client, of cv_client_receive,
 *  cv_client_ack, cv_client_publish, cv_client_admin or
 *  cv_client_admin_args, or until cv_client_destroy; copy whatever must
 *  last longer (cv_client_ack(c, d->seq, &err) is fine: d->seq is read
 *  before the call). The client's thread.                                 */
CAVEAT_EXPORT const cv_delivery_t *cv_client_receive(cv_client_t *self, int timeout_ms,
                                                     cv_error_t *err);

/*  Acknowledges every delivery with seq <= up_to (cumulative); up_to must
 *  not exceed the highest seq returned by cv_client_receive. Never waits.
 *  The client's thread.                                                   */
CAVEAT_EXPORT bool cv_client_ack(cv_client_t *self, uint64_t up_to, cv_error_t *err);

/*  A receipt: the broker's proof that it recorded one acknowledged
 *  delivery in its signed audit log (docs/protocol.md, "Receipts").
 *  proof is a c2sp.org/tlog-proof@v1 file whose extra data is the leaf;
 *  `caveat audit receipt FILE --key VERIFIER` checks one. The leaf (a JSON
 *  object) names the agency, queue, seq, report and "view": the SHA-256,
 *  in hex, of the report's view as sent (the packed caveat.Report, which
 *  packing the received report again gives: cv_client_view_hash). */
typedef struct {
    uint64_t seq;          /* the delivery's */
    const char *report_id; /* the delivery's */
    uint64_t index;        /* the leaf's index in the log */
    const uint8_t *leaf;   /* the leaf's bytes */
    size_t leaf_len;
    const char *proof; /* the tlog-proof@v1 text, NUL-terminated */
    size_t proof_len;
} cv_receipt_t;

/*  The next receipt received (with config.receipts) and not returned
 *  before, or NULL when none is here: receipts come in the background of
 *  cv_client_receive, some time after the acknowledgement (the broker
 *  proves against a checkpoint signed after it), so an application that
 *  wants every receipt keeps calling cv_client_receive (timeout > 0) until
 *  they are in. Borrowed until the next call of cv_client_receipt or
 *  cv_client_destroy. The client's thread.                                */
CAVEAT_EXPORT const cv_receipt_t *cv_client_receipt(cv_client_t *self);
/*  SHA-256 of the view of a delivery, as the broker hashes it for its
 *  "delivered" leaf: of d->report packed, or for feedback of its
 *  FeedbackNote packed. false when out of memory. Any thread.            */
CAVEAT_EXPORT bool cv_client_view_hash(const cv_delivery_t *d, uint8_t hash[32]);

/*  For an event loop (poll, epoll, libuv...): a descriptor that becomes
 *  readable when the connection may have something for the client. It is
 *  ZeroMQ's ZMQ_FD, which is edge-triggered and signals "look", not "a
 *  delivery is here": when it is readable, call cv_client_receive with
 *  timeout 0 until it returns NULL with CV_ERR_TIMEOUT; and since any call
 *  on the client may consume what it signalled, drain the same way after
 *  cv_client_publish, cv_client_ack or an admin call too, before polling
 *  again. Do not read or write the descriptor, nor close it: it belongs
 *  to the client and lives as long as it. -1 on failure. The client's
 *  thread.                                                                */
CAVEAT_EXPORT int cv_client_fd(cv_client_t *self);

/*  Calls fn(client, state, arg) on each change, from inside whichever
 *  call of the client notices it (on the client's thread, never from
 *  another thread): an event loop that wants to hear of a dropped
 *  connection while idle calls cv_client_receive(c, 0, ...) on a timer.
 *  fn must not call the client. NULL fn: no more calls. The client's
 *  thread.                                                                */
CAVEAT_EXPORT void cv_client_set_state_callback(cv_client_t *self, cv_client_state_fn *fn,
                                                void *arg);

/*  Sends feedback on a report delivered to this agency: value is
 *  "useful", "not_useful", "action_taken" or "seen", text (NULL: none) at
 *  most 1,000 bytes, originator NULL unless reports of two originators
 *  with this id were delivered to the agency. The broker passes it to the
 *  report's originator alone. Waits (timeout_ms) for the broker's word
 *  that it is stored. false with err: CV_ERR_BAD_INPUT (a value or text
 *  the broker would refuse, checked before sending), CV_ERR_BROKER with
 *  broker_code FORBIDDEN (no report of that id was delivered to the
 *  agency), BAD_REQUEST or LIMIT (too much feedback: later, or no more
 *  on this report), CV_ERR_FAILED (the broker could not store it now, its
 *  disk short or its store failing: retry later),
 *  CV_ERR_TIMEOUT. Sent again on a new session after a reconnect; a
 *  FeedbackAck lost with a connection may make the broker store it twice.
 *  The client's thread.                                                   */
CAVEAT_EXPORT bool cv_client_feedback(cv_client_t *self, const char *report_id,
                                      const char *originator, const char *value, const char *text,
                                      int timeout_ms, cv_error_t *err);

/*  An administrator's request ("stats" or "reload"): returns
 *  AdminReply.text (malloc'd) and sets *ok to AdminReply.ok, or NULL with
 *  err (e.g. CV_ERR_BROKER "broker: FORBIDDEN: ..." for an agency that is
 *  not an administrator). The client's thread.                            */
CAVEAT_EXPORT char *cv_client_admin(cv_client_t *self, const char *command, bool *ok,
                                    int timeout_ms, cv_error_t *err);
/*  The same with arguments: "backup" takes a directory (on the broker's
 *  machine, which must not exist yet); "purge" takes "dry-run" to list only. */
CAVEAT_EXPORT char *cv_client_admin_args(cv_client_t *self, const char *command,
                                         const char *const *args, size_t n_args, bool *ok,
                                         int timeout_ms, cv_error_t *err);

/*  The answer to an approval: status CV_PUBLISH_OK, or
 *  CV_PUBLISH_REFUSED_UNAVAILABLE when the broker could not store it (send
 *  it again); the agencies it released the report to (none when every
 *  agency it approves had the report already, or the policy releases it
 *  to none of them). Strings malloc'd: cv_approval_result_clear.          */
typedef struct {
    int status; /* a cv_publish_status_t */
    char *reason;
    char **recipients;
    size_t n_recipients;
} cv_approval_result_t;

/*  The originator's approval of one of its own reports, whose handling
 *  code holds it until the originator approves each release, to an agency
 *  id or an agency type of the policy. Waits (timeout_ms) until the broker
 *  has stored the approval and routed the report to the agencies it
 *  releases, each of which then gets its own redacted view. Returns 0
 *  (stored), 1 (not stored: result->reason), or -1 with err: a timeout,
 *  a transport failure, or a broker Error (CV_ERR_BROKER; BAD_REQUEST for
 *  no such report of this agency, an unknown agency or type, or a report
 *  that needs no approval; LIMIT past the approvals an agency may send a
 *  second or a report may have). Clear result whatever the return. The
 *  client's thread.                                                       */
CAVEAT_EXPORT int cv_client_approve(cv_client_t *self, const char *report_id, const char *to,
                                    cv_approval_result_t *result, int timeout_ms, cv_error_t *err);
/*  Frees what result holds. Any thread that owns result.                  */
CAVEAT_EXPORT void cv_approval_result_clear(cv_approval_result_t *result);

/*  The name of a cv_publish_status_t ("REFUSED_INVALID") and of a broker
 *  ErrorCode ("REVOKED"); "UNKNOWN" for other values. Any thread.         */
CAVEAT_EXPORT const char *cv_status_name(int status);
CAVEAT_EXPORT const char *cv_error_code_name(uint32_t code);

#ifdef __cplusplus
}
#endif
#endif
