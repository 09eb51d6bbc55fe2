/*  cv_broker.h: caveatd, the CURVE-encrypted broker that enforces the
 *  sharing protocol. One thread, one loop: every iteration reads what
 *  arrived, stores and routes it in one transaction (group commit), and
 *  only after the commit answers and delivers.
 */
#ifndef CV_BROKER_H
#define CV_BROKER_H

#include "cv_policy.h"
#include "cv_store.h"

typedef struct {
    const char *policy_path;
    const char *endpoint;  /* tcp://127.0.0.1:7400; a port of * picks a free one */
    const char *cert_path; /* the broker's secret certificate */
    const char *data_dir;
    cv_sync_t sync;
    int max_frame;            /* bytes; 0: 1 MiB */
    int max_reports;          /* reports one Publish may hold; 0: 500 */
    int clock_skew_s;         /* how far ahead of the clock a report's created may be; 0: 1 day */
    int disk_reserve_mb;      /* disk kept for deliveries when the disk fills (cv_space.h); 0: 64 */
    int backup_rate_mb;       /* MB a second a backup copies at most (cv_backup.h); 0: 256, -1:
                                 as fast as it can */
    int ack_timeout_ms;       /* resend what a session leaves unacknowledged this long; 0: 30 s */
    int max_pending;          /* connections without a session before the oldest is ended; 0: a
                                 quarter of the descriptor limit, at most 1024 */
    int handshake_timeout_ms; /* a connection not past its handshake by then is dropped, one
                                 without a session by twice that; 0: 5 s */
    bool verbose;             /* debug lines on stderr */
    bool log_json;            /* log lines as JSON objects (cv_log.h) */
    const char *monitor;      /* "PORT" or "IPV4:PORT": /metrics and /healthz (cv_monitor.h); NULL:
                                 none */
    const char *pid_file;     /* caveatd writes its pid there once started; NULL: none */
    bool quiet;               /* no lines at all (fuzzing) */
    /* a signers file: when set, only a policy signed by one of them loads */
    const char *policy_signers;
    bool audit_off; /* --audit-log off: for measuring the log's cost (cv_record_turn_off) */
    int purge_step; /* reports a purge removes in one transaction; 0: 64 (tests set fewer) */
} cv_broker_config_t;

typedef struct cv_broker_t cv_broker_t;

/*  Loads the policy and the key, opens the store, starts the ZAP handler,
 *  binds, and checks that an unlisted key is refused. NULL with err when
 *  any of it fails. */
cv_broker_t *cv_broker_new(const cv_broker_config_t *config, cv_error_t *err);
void cv_broker_destroy(cv_broker_t **self_p);

/*  The endpoint actually bound (with the port chosen). */
const char *cv_broker_endpoint(const cv_broker_t *self);

/*  Without sockets, for fuzzing and tests: the policy and the store only.
 *  cv_broker_feed handles one frame's bytes as one turn, as if agency (by
 *  index) sent it on the connection numbered connection (a routing id of
 *  the form the transport assigns); what the broker would send is
 *  dropped. cv_broker_check_store reads every stored report back: how
 *  many there are, or -1 (err says which) when one does not unpack. */
cv_broker_t *cv_broker_new_offline(const cv_broker_config_t *config, cv_error_t *err);
void cv_broker_feed(cv_broker_t *self, int agency, uint32_t connection, const void *frame,
                    size_t size);
/*  Frames handled as the loop drains its socket: as many to a turn as a
 *  turn takes. Returns the number of turns. */
typedef struct {
    int agency;
    uint32_t connection;
    const void *bytes;
    size_t size;
} cv_broker_frame_t;
int cv_broker_feed_all(cv_broker_t *self, const cv_broker_frame_t *frames, size_t n);
int64_t cv_broker_check_store(cv_broker_t *self, cv_error_t *err);
/*  Offline: each message the broker would send, as it would send it (the
 *  connection's number, as cv_broker_feed takes it, and the frame's
 *  bytes), to fn; NULL to drop them again. For tests of who is sent what. */
typedef void(cv_broker_sent_fn)(void *arg, uint32_t connection, const uint8_t *frame, size_t size);
void cv_broker_on_sent(cv_broker_t *self, cv_broker_sent_fn *fn, void *arg);
/*  Offline: the connection numbered connection went, as the broker reads
 *  it from libzmq's monitor; frames fed from it after this are those it
 *  sent before going. */
void cv_broker_went(cv_broker_t *self, uint32_t connection);
/*  What cv_broker_run does when it stops cleanly, offline: a purge going
 *  is ended, acknowledgements saved, what waits for a sync sent. */
void cv_broker_stop_offline(cv_broker_t *self);

/*  Serves until SIGINT or SIGTERM; SIGHUP reloads the policy. */
int cv_broker_run(cv_broker_t *self);

#endif
