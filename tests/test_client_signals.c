/*  test_client_signals.c: libcaveat leaves the application's signal
 *  handlers alone. czmq catches SIGINT and SIGTERM the first time it is
 *  used, so this runs in a process of its own where nothing used czmq
 *  before the client. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "caveat.h"

#define KEYS CAVEAT_SOURCE_DIR "/examples/keys"

static volatile sig_atomic_t caught;

static void on_sigint(int sig)
{
    caught = sig;
}

/*  The agency's secret certificate with the mode libcaveat asks for. */
static void copy_secret(char *path)
{
    int fd = mkstemp(path); /* 0600 */
    assert_true(fd >= 0);
    FILE *in = fopen(KEYS "/hull-cc.cert_secret", "rb");
    assert_non_null(in);
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, in);
    fclose(in);
    assert_int_equal(write(fd, buf, n), (ssize_t)n);
    close(fd);
}

static void test_handlers_kept(void **state)
{
    (void)state;
    char secret[] = "/tmp/caveat-signals-XXXXXX";
    copy_secret(secret);
    struct sigaction ours = {.sa_handler = on_sigint};
    sigemptyset(&ours.sa_mask);
    assert_int_equal(sigaction(SIGINT, &ours, NULL), 0);
    struct sigaction term_before;
    sigaction(SIGTERM, NULL, &term_before);

    /* nothing listens there: the client fails, after czmq has started */
    cv_client_config_t config = {.endpoint = "tcp://127.0.0.1:1",
                                 .server_cert = KEYS "/broker.cert",
                                 .client_cert = secret,
                                 .timeout_ms = 100};
    cv_error_t err = {0};
    assert_null(cv_client_new(&config, &err));
    unlink(secret);
    assert_int_equal(err.code, CV_ERR_UNREACHABLE);

    struct sigaction now;
    sigaction(SIGINT, NULL, &now);
    assert_ptr_equal(now.sa_handler, on_sigint);
    sigaction(SIGTERM, NULL, &now);
    assert_ptr_equal(now.sa_handler, term_before.sa_handler);
    raise(SIGINT);
    assert_int_equal(caught, SIGINT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handlers_kept),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
