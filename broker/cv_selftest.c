/*  cv_selftest.c: before serving, prove that the CURVE socket refuses a key
 *  the policy does not list.
 *
 *  A CURVE server with no ZAP handler admits every key, and a
 *  misconfigured context or a ZAP socket bound in the wrong place fails the
 *  same silent way. So the broker connects to itself with a fresh key and
 *  watches the handshake through a socket monitor: it must end in
 *  HANDSHAKE_FAILED_AUTH, never SUCCEEDED.
 */
#include "cv_selftest.h"

/*  A wildcard address (tcp://0.0.0.0:PORT, or * for the host) is reached
 *  at 127.0.0.1. */
static void loopback_of(const char *endpoint, char *out, size_t size)
{
    const char *port = strrchr(endpoint, ':');
    if (strncmp(endpoint, "tcp://*:", 8) == 0 || strncmp(endpoint, "tcp://0.0.0.0:", 14) == 0)
        snprintf(out, size, "tcp://127.0.0.1%s", port);
    else
        snprintf(out, size, "%s", endpoint);
}

static zsock_t *unlisted_client(const uint8_t server_key[32], zsock_t **monitor)
{
    zsock_t *client = zsock_new(ZMQ_DEALER);
    zcert_t *cert = zcert_new();
    if (!client || !cert) {
        zsock_destroy(&client);
        zcert_destroy(&cert);
        return NULL;
    }
    zsock_set_linger(client, 0);
    zsock_set_curve_serverkey_bin(client, server_key);
    zcert_apply(cert, client);
    zcert_destroy(&cert);
    int events = ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                 ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL;
    /* a fresh name each time: a stopped monitor releases its name late */
    static unsigned runs;
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "inproc://caveat-selftest-%u", ++runs);
    *monitor = zsock_new(ZMQ_PAIR);
    if (!*monitor || zmq_socket_monitor(zsock_resolve(client), endpoint, events) != 0 ||
        zsock_connect(*monitor, "%s", endpoint) != 0) {
        zsock_destroy(monitor);
        zsock_destroy(&client);
    }
    return client;
}

/*  The event number of one monitor message (first frame: u16 event, u32). */
static int monitor_event(zsock_t *monitor)
{
    zmsg_t *msg = zmsg_recv(monitor);
    zframe_t *frame = msg ? zmsg_first(msg) : NULL;
    int event = 0;
    if (frame && zframe_size(frame) >= 2) {
        uint16_t value;
        memcpy(&value, zframe_data(frame), sizeof value);
        event = value;
    }
    zmsg_destroy(&msg);
    return event;
}

bool cv_selftest_unlisted_key(const char *endpoint, const uint8_t server_key[32], cv_zap_t *zap,
                              const cv_policy_t *policy, cv_error_t *err)
{
    char target[512];
    loopback_of(endpoint, target, sizeof target);
    zsock_t *monitor = NULL;
    zsock_t *client = unlisted_client(server_key, &monitor);
    if (!client) {
        cv_error_set(err, NULL, 0, 0, "self-test: cannot make a test client");
        return false;
    }
    zpoller_t *poller = zpoller_new(monitor, NULL);
    if (zap)
        zpoller_add(poller, cv_zap_socket(zap));
    zsock_connect(client, "%s", target);
    int event = 0;
    int64_t deadline = zclock_mono() + 5000;
    while (!event && zclock_mono() < deadline) {
        void *ready = zpoller_wait(poller, 100);
        if (zap && ready == cv_zap_socket(zap))
            cv_zap_handle(zap, policy);
        else if (ready == monitor)
            event = monitor_event(monitor);
    }
    zmq_socket_monitor(zsock_resolve(client), NULL, 0);
    zpoller_destroy(&poller);
    zsock_destroy(&monitor);
    zsock_destroy(&client);
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
        return true;
    cv_error_set(err, NULL, 0, 0,
                 "self-test: a key the policy does not list %s at %s; refusing to serve",
                 event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED ? "was admitted"
                 : event                                ? "did not fail authentication"
                                                        : "got no answer",
                 target);
    return false;
}
