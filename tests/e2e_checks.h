/*  e2e_checks.h: client steps the end-to-end tests share, each with its
 *  assertion: a client of an agency, a receive, "nothing more arrives".
 *  For cmocka tests (include cmocka.h first) against a broker the harness
 *  started.
 */
#ifndef CV_E2E_CHECKS_H
#define CV_E2E_CHECKS_H

#include "harness.h"

static inline cv_client_t *client(harness_t *h, const char *agency, const char *feed,
                                  uint32_t credit)
{
    cv_error_t err = {""};
    cv_client_t *c = harness_client(h, agency, feed, credit, &err);
    if (!c)
        print_error("client %s: %s\n", agency, err.msg);
    assert_non_null(c);
    return c;
}

/*  The next delivery, or NULL on timeout (an error is printed). */
static inline const Caveat__Wire__Delivery *receive(cv_client_t *c, int timeout_ms)
{
    cv_error_t err = {""};
    const Caveat__Wire__Delivery *d = cv_client_receive(c, timeout_ms, &err);
    if (!d && err.msg[0])
        print_error("receive: %s\n", err.msg);
    return d;
}

static inline void assert_nothing_arrives(cv_client_t *c, int timeout_ms)
{
    const Caveat__Wire__Delivery *d = receive(c, timeout_ms);
    if (d)
        print_error("unexpected delivery of %s, seq %llu\n", d->report_id,
                    (unsigned long long)d->seq);
    assert_null(d);
}

#endif
