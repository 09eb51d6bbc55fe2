/*  cv_zap.h: the broker's ZAP handler (RFC 27), answering from the policy
 *  in force, so a reload changes who may connect at once.
 *
 *  Must exist before the broker's CURVE socket binds: libzmq admits any key
 *  when no ZAP handler is bound.
 */
#ifndef CV_ZAP_H
#define CV_ZAP_H

#include "cv_log.h"

#include <czmq.h>

#include "cv_policy.h"

typedef struct cv_zap_t cv_zap_t;

/*  Binds the handler's socket at inproc://zeromq.zap.01. */
cv_zap_t *cv_zap_new(cv_log_t *log, cv_error_t *err);
/*  From now on every refused handshake is logged (peer address, the key
 *  offered), rate-limited: not the broker's own test at start. */
void cv_zap_log_refusals(cv_zap_t *self);
void cv_zap_destroy(cv_zap_t **self_p);

/*  The socket to poll. */
zsock_t *cv_zap_socket(cv_zap_t *self);

/*  Answers one waiting request: CURVE with a key of an agency of policy is
 *  admitted with User-Id = the key in Z85; anything else is refused. */
void cv_zap_handle(cv_zap_t *self, const cv_policy_t *policy);

uint64_t cv_zap_admitted(const cv_zap_t *self);
uint64_t cv_zap_refused(const cv_zap_t *self);

#endif
