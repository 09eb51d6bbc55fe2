/*  cv_log.h: caveatd's log, on stderr, one line per event.
 *
 *  A line is "TIME LEVEL caveatd: MESSAGE", TIME in RFC 3339 UTC with
 *  milliseconds, LEVEL one of debug, info, warning, error; or, with
 *  CV_LOG_JSON, one JSON object a line: {"time", "level", "agency" (when
 *  an agency's traffic caused it), "message"}.
 *
 *  Every line is escaped as a whole: a C0 or C1 control, DEL, a byte
 *  that is not UTF-8 or a backslash is written as \xNN a byte, so no
 *  value (a report id, a feed name, a peer's address) can start a line of
 *  its own, forge one, or send a terminal an escape sequence. Lines that an
 *  agency's traffic causes are rate-limited per agency: at most
 *  CV_LOG_AGENCY_LINES a second each, the rest counted and reported in
 *  one line when that agency next logs in a later second. Report content
 *  is only ever logged at debug level (cv_log_debug).
 */
#ifndef CV_LOG_H
#define CV_LOG_H

#include <stdbool.h>
#include <stdint.h>

#define CV_LOG_AGENCY_LINES 20 /* per agency per second */

typedef struct cv_log_t cv_log_t;

typedef enum { CV_LOG_TEXT, CV_LOG_JSON } cv_log_format_t;

/*  verbose: debug lines too; quiet: no lines at all (fuzzing). */
cv_log_t *cv_log_new(cv_log_format_t format, bool verbose, bool quiet);
void cv_log_destroy(cv_log_t **self_p);

/*  Lines about the broker itself: start and stop, reloads (info); what an
 *  operator should look at (warning: a refused reload, a short disk, a
 *  quarantined report); what stops work (error: a failed write, a
 *  failed sync). */
void cv_log_info(cv_log_t *self, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cv_log_warning(cv_log_t *self, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cv_log_error(cv_log_t *self, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/*  A line caused by something outside any agency (a handshake with an
 *  unknown key), rate-limited as one more "agency" named by key. */
void cv_log_limited(cv_log_t *self, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/*  Only with --verbose. */
void cv_log_debug(cv_log_t *self, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/*  A debug line caused from outside any agency, rate-limited as
 *  cv_log_limited's (a revoked key's connection may send without end). */
void cv_log_debug_limited(cv_log_t *self, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/*  A line caused by agency's traffic, rate-limited per agency; debug lines
 *  are written only with --verbose, and count against the same limit. */
void cv_log_agency(cv_log_t *self, const char *agency, bool debug, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*  A line caused by agency's traffic that says the turn stored something
 *  (a feedback, an approval's releases, a report): held until
 *  cv_log_settle, then written as cv_log_agency writes it if the turn
 *  committed, and never if it rolled back, whose senders are told to try
 *  again. */
void cv_log_agency_on_commit(cv_log_t *self, const char *agency, bool debug, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/*  The turn has committed, or rolled back: its held lines are written, or
 *  dropped. */
void cv_log_settle(cv_log_t *self, bool committed);

/*  Lines not written because of the rate limit, since start. */
uint64_t cv_log_suppressed(const cv_log_t *self);

#endif
