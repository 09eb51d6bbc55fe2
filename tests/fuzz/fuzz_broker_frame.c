/*  fuzz_broker_frame: the broker's real frame handling, without sockets
 *  (cv_broker_new_offline, cv_broker_feed), over a store in a temporary
 *  directory with the example policy. An input is a run of messages, each
 *
 *      agency (1 byte, an index into the policy's agencies, modulo)
 *      connection (1 byte: 0-3 in its low bits, so sessions can meet on
 *                  a routing id; bit 7 set: that connection went first,
 *                  as the broker reads it from libzmq's monitor)
 *      length (2 bytes, little-endian) and that many bytes of frame
 *
 *  each fed as one turn, so the fuzzer can say Hello, publish, acknowledge
 *  and ask for admin work across agencies and connections. After the
 *  input, every stored report must read back (cv_broker_check_store): no
 *  frame may leave the store holding what the broker cannot read.
 *
 *  The broker (and its store) is kept across inputs, and made again every
 *  FRESH_EVERY inputs, so that the check stays cheap. */
#include <czmq.h>
#include <stdlib.h>
#include <string.h>

#include "cv_broker.h"
#include "fuzz.h"

#define FRESH_EVERY 500

static char dir[] = "/tmp/caveat-fuzz-broker-XXXXXX";
static cv_broker_t *broker;
static int agencies;

static void fresh_broker(void)
{
    cv_broker_destroy(&broker);
    char command[256];
    snprintf(command, sizeof command, "rm -rf %s/data", dir);
    if (system(command) != 0)
        abort();
    char policy[128], data[128];
    snprintf(policy, sizeof policy, "%s/policy.yaml", dir);
    snprintf(data, sizeof data, "%s/data", dir);
    cv_broker_config_t config = {
        .policy_path = policy, .data_dir = data, .sync = CV_SYNC_OFF, .quiet = true};
    cv_error_t err = {0};
    if (!(broker = cv_broker_new_offline(&config, &err)))
        fuzz_fail("offline broker: %s", err.msg);
}

/*  At exit: the broker's threads and sockets end before czmq's own
 *  shutdown, and the directory goes. */
static void tear_down(void)
{
    cv_broker_destroy(&broker);
    char command[256];
    snprintf(command, sizeof command, "rm -rf %s", dir);
    if (system(command) != 0)
        fprintf(stderr, "fuzz_broker_frame: cannot remove %s\n", dir);
}

static void set_up(void)
{
    if (!mkdtemp(dir))
        abort();
    size_t len = 0;
    char *text = fuzz_source_file("examples/policy.yaml", &len);
    char path[128];
    snprintf(path, sizeof path, "%s/policy.yaml", dir);
    FILE *f = fopen(path, "w");
    if (!f || fwrite(text, 1, len, f) != len || fclose(f) != 0)
        abort();
    free(text);
    fresh_broker();
    atexit(tear_down);
    cv_error_t err = {0};
    cv_policy_t *policy = cv_policy_load_file(path, NULL, &err);
    if (!policy)
        fuzz_fail("example policy: %s", err.msg);
    agencies = cv_policy_agency_count(policy);
    cv_policy_destroy(&policy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int inputs;
    if (!broker)
        set_up();
    else if (++inputs % FRESH_EVERY == 0)
        fresh_broker();
    while (size >= 4) {
        int agency = data[0] % agencies;
        uint32_t connection = data[1] % 4;
        if (data[1] & 0x80) /* its frames now are those it sent before going */
            cv_broker_went(broker, connection);
        size_t len = (size_t)data[2] | (size_t)data[3] << 8;
        data += 4;
        size -= 4;
        if (len > size)
            len = size;
        cv_broker_feed(broker, agency, connection, data, len);
        data += len;
        size -= len;
    }
    cv_error_t err = {0};
    if (cv_broker_check_store(broker, &err) < 0)
        fuzz_fail("the store holds what the broker cannot read: %s", err.msg);
    return 0;
}
