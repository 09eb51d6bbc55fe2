/*  cv_admin.h: the admin commands' replies, built from what the broker
 *  hands over. The broker owns its state (sessions, queues, counts, the
 *  store) and answers who may ask; this module only says it, as JSON for
 *  `caveat admin` and as the Prometheus text for /metrics. Backups, the
 *  admin work that takes long, run in cv_backup.
 */
#ifndef CV_ADMIN_H
#define CV_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cv_store.h"

/*  One of the broker's counts: admin stats and /metrics show the same. */
typedef struct {
    const char *name; /* in stats; /metrics says caveat_NAME, _total for a counter */
    bool counter;     /* only ever rises (from start); else a gauge */
    const char *help;
    uint64_t value;
} cv_count_t;

/*  The policy in force, as stats and /metrics name it. */
typedef struct {
    const char *protocol;
    const char *hash;
} cv_admin_policy_t;

/*  `admin stats`: every count by name, then the policy. malloc'd. */
char *cv_admin_stats_json(const cv_count_t *counts, size_t n, cv_admin_policy_t policy);

/*  /metrics: the counts in the Prometheus text format (0.0.4), and the
 *  policy as caveat_policy_info's labels. malloc'd. */
char *cv_admin_metrics_text(const cv_count_t *counts, size_t n, cv_admin_policy_t policy);

/*  One session as `admin sessions` lists it. */
typedef struct {
    const char *agency;
    const char *feed; /* "" for the direct queue */
    const char *peer; /* the connection's address */
    bool send_only;
    int64_t since; /* unix seconds: its Hello */
    uint64_t in_flight, queued;
} cv_admin_session_t;

/*  `admin sessions`: the sessions as given (oldest first), a JSON array. */
char *cv_admin_sessions_json(const cv_admin_session_t *sessions, size_t n);

/*  `admin quarantined`: the store's quarantined reports, a JSON array;
 *  NULL with err when the store cannot list them. */
char *cv_admin_quarantined_json(cv_store_t *store, cv_error_t *err);

/*  How a purge runs: for real or a dry run, at the broker's clock or, for
 *  a dry run, at a time given (what a clock showing that would purge);
 *  trust: an administrator checked the clock. */
typedef struct {
    bool dry_run, trust;
    bool at_given; /* apart from at: 1970-01-01T00:00:00Z is a time too */
    int64_t at;    /* unix seconds, when at_given; else the broker's clock */
} cv_purge_how_t;

/*  `admin purge`'s arguments (dry-run, trust-clock, at=TIME with
 *  dry-run): false, *how untouched, on any other; cv_admin_purge_usage
 *  says what it takes. */
bool cv_admin_purge_args(const char *const *args, size_t n, cv_purge_how_t *how);
extern const char *const cv_admin_purge_usage;

/*  `admin review`'s arguments: report=ID, originator=AGENCY (when
 *  several agencies used the id), retain-until=TIME (RFC 3339, later
 *  than now) or dispose, and reason=TEXT. Pointers into args. false with
 *  *why when they are not that. */
#define CV_REVIEW_REASON_MAX 500 /* bytes: a reviewer's note, not a document */

typedef struct {
    const char *id, *originator, *reason;
    int64_t retain_until; /* 0 with dispose */
    bool dispose;
} cv_review_args_t;

bool cv_admin_review_args(const char *const *args, size_t n, int64_t now, cv_review_args_t *out,
                          const char **why);

/*  `admin review`'s reply for found (cv_store_review's answer): the
 *  decision as JSON when 1, else what went wrong. malloc'd. */
char *cv_admin_review_reply(const cv_review_args_t *args, int found, const char *error);

/*  `admin purge`'s reply, built while the store purges: the list is a
 *  cv_purge_fn's arg, given every report purged (the first 1000 are
 *  listed; the count says the rest). */
typedef struct cv_admin_purged_t cv_admin_purged_t;
cv_admin_purged_t *cv_admin_purged_new(void);
void cv_admin_purged_add(void *list, const char *id, const char *category, int64_t created);
/*  The reply, {"reports":[...],"purged":N} ("would_purge" for a dry
 *  run), or error when total < 0; destroys the list. malloc'd. */
char *cv_admin_purged_reply(cv_admin_purged_t **list_p, bool dry_run, int total, const char *error);
/*  A list whose reply will not be written. */
void cv_admin_purged_destroy(cv_admin_purged_t **list_p);

#endif
