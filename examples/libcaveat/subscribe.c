/*  subscribe.c: waits for deliveries in a poll() loop, as an application
 *  with an event loop of its own would, and prints each one's summary.
 *  usage: subscribe ENDPOINT BROKER.cert AGENCY.cert_secret COUNT */
#include <caveat.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>

static void on_state(cv_client_t *client, cv_client_state_t state, void *arg)
{
    (void)client;
    (void)arg;
    fprintf(stderr, "subscribe: %s\n",
            state == CV_STATE_CONNECTED      ? "connected"
            : state == CV_STATE_DISCONNECTED ? "disconnected"
                                             : "key refused");
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: subscribe ENDPOINT BROKER.cert AGENCY.cert_secret COUNT\n");
        return 2;
    }
    cv_client_config_t config = {
        .endpoint = argv[1], .server_cert = argv[2], .client_cert = argv[3], .on_state = on_state};
    cv_error_t err;
    cv_client_t *client = cv_client_new(&config, &err);
    if (!client) {
        fprintf(stderr, "subscribe: %s (%s)\n", err.msg, cv_code_name(err.code));
        return 1;
    }
    long wanted = atol(argv[4]), got = 0;
    struct pollfd item = {.fd = cv_client_fd(client), .events = POLLIN};
    while (got < wanted) {
        const cv_delivery_t *d;
        /* ZMQ_FD is edge-triggered: drain with timeout 0 before polling */
        while (got < wanted && (d = cv_client_receive(client, 0, &err))) {
            printf("%s %s\n", d->report_id,
                   d->report && d->report->summary ? d->report->summary : "");
            got++;
            if (!cv_client_ack(client, d->seq, &err))
                break;
        }
        if (got < wanted && err.code != CV_ERR_TIMEOUT) {
            fprintf(stderr, "subscribe: %s (%s)\n", err.msg, cv_code_name(err.code));
            break;
        }
        if (got < wanted && poll(&item, 1, 10000) == 0) {
            fprintf(stderr, "subscribe: nothing for 10s\n");
            break;
        }
    }
    fflush(stdout);
    cv_client_destroy(&client);
    return got == wanted ? 0 : 1;
}
