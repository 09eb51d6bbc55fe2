/*  The broker's start-up check must catch a CURVE socket that admits any
 *  key: with no ZAP handler bound, libzmq lets every key in. Run first with
 *  no handler (the check must fail), then with the broker's handler (it
 *  must pass). One process, czmq's one context, so the order matters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "cv_selftest.h"

static const char *policy_text =
    "protocol: t\nversion: 1\nlevels: [OFFICIAL]\n"
    "agencies:\n"
    "  a: {organisation: o, type: police, clearance: OFFICIAL, areas: [x],"
    " key: \"rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7\"}\n";

static zsock_t *curve_server(zcert_t *cert, char *endpoint, size_t size)
{
    zsock_t *router = zsock_new(ZMQ_ROUTER);
    zcert_apply(cert, router);
    zsock_set_curve_server(router, 1);
    zsock_set_zap_domain(router, "caveat");
    assert_true(zsock_bind(router, "tcp://127.0.0.1:*") > 0);
    snprintf(endpoint, size, "%s", zsock_endpoint(router));
    return router;
}

static void test_without_zap_handler_fails_then_with_it_passes(void **state)
{
    (void)state;
    cv_error_t err = {""};
    cv_policy_t *policy = cv_policy_load_buffer(policy_text, strlen(policy_text), "p", NULL, &err);
    assert_non_null(policy);
    zcert_t *cert = zcert_new();
    char endpoint[256];

    zsock_t *open_server = curve_server(cert, endpoint, sizeof endpoint);
    assert_false(cv_selftest_unlisted_key(endpoint, zcert_public_key(cert), NULL, policy, &err));
    assert_non_null(strstr(err.msg, "was admitted"));
    zsock_destroy(&open_server);

    cv_log_t *log = cv_log_new(CV_LOG_TEXT, false, true);
    cv_zap_t *zap = cv_zap_new(log, &err);
    assert_non_null(zap);
    zsock_t *guarded = curve_server(cert, endpoint, sizeof endpoint);
    bool passed = cv_selftest_unlisted_key(endpoint, zcert_public_key(cert), zap, policy, &err);
    if (!passed)
        print_error("%s\n", err.msg);
    assert_true(passed);
    assert_int_equal(cv_zap_refused(zap), 1);
    assert_int_equal(cv_zap_admitted(zap), 0);
    zsock_destroy(&guarded);
    cv_zap_destroy(&zap);
    cv_log_destroy(&log);
    zcert_destroy(&cert);
    cv_policy_destroy(&policy);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_without_zap_handler_fails_then_with_it_passes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
