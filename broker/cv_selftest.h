/*  cv_selftest.h: the broker's start-up check that ZAP is really in force. */
#ifndef CV_SELFTEST_H
#define CV_SELFTEST_H

#include "cv_zap.h"

/*  Connects to endpoint with a fresh, unlisted CURVE key, answering ZAP
 *  requests from policy meanwhile (zap may be NULL: a handler elsewhere,
 *  or none). True only when the handshake was refused for authentication;
 *  else err says what happened. */
bool cv_selftest_unlisted_key(const char *endpoint, const uint8_t server_key[32], cv_zap_t *zap,
                              const cv_policy_t *policy, cv_error_t *err);

#endif
