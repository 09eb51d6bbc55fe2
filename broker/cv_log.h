/*  cv_log.h: caveatd's log, on stderr, one line per event.
 *
 *  Every line is escaped as a whole: a byte below 0x20, 0x7f or a
 *  backslash is written as \xNN, so no value (a report id, a feed name, a
 *  peer's address) can start a line of its own or forge one. Lines that an
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

/*  verbose: debug lines too; quiet: no lines at all (fuzzing). */
cv_log_t *cv_log_new(bool verbose, bool quiet);
void cv_log_destroy(cv_log_t **self_p);

/*  A line about the broker itself: start, reload, store errors. */
void cv_log_info(cv_log_t *self, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/*  Only with --verbose. */
void cv_log_debug(cv_log_t *self, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/*  A line caused by agency's traffic, rate-limited per agency; debug lines
 *  are written only with --verbose, and count against the same limit. */
void cv_log_agency(cv_log_t *self, const char *agency, bool debug, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*  Lines not written because of the rate limit, since start. */
uint64_t cv_log_suppressed(const cv_log_t *self);

#endif
