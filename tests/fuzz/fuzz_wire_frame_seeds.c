/*  fuzz_wire_frame_seeds DIR: writes the seed frames of fuzz_wire_frame
 *  into DIR (its corpus/): one of each kind a client sends or receives,
 *  the reports packed from examples/reports. Run again after a change to
 *  wire.proto; the fuzzer grows its own corpus from these. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_proto.h"
#include "fuzz.h"

static Caveat__Report *example_report(const char *name)
{
    char relative[200];
    snprintf(relative, sizeof relative, "examples/reports/%s.json", name);
    size_t len;
    char *text = fuzz_source_file(relative, &len);
    cv_error_t err;
    ProtobufCMessage *msg = cv_json_parse(cv_schema_report(), text, len, relative, &err);
    if (!msg)
        fuzz_fail("%s", err.msg);
    free(text);
    return (Caveat__Report *)msg;
}

static void write_frame(const char *dir, const char *name, const Caveat__Wire__Frame *frame)
{
    size_t len = caveat__wire__frame__get_packed_size(frame);
    uint8_t *bytes = malloc(len ? len : 1);
    if (!bytes)
        abort();
    caveat__wire__frame__pack(frame, bytes);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(bytes, 1, len, f) != len || fclose(f) != 0)
        fuzz_fail("%s: %s", path, strerror(errno));
    free(bytes);
}

/*  A Deliver of one delivery. */
static void write_deliver(const char *dir, const char *name, Caveat__Wire__Delivery *delivery)
{
    Caveat__Wire__Delivery *deliveries[] = {delivery};
    Caveat__Wire__Deliver deliver = CAVEAT__WIRE__DELIVER__INIT;
    deliver.n_deliveries = 1;
    deliver.deliveries = deliveries;
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_DELIVER;
    frame.deliver = &deliver;
    write_frame(dir, name, &frame);
}

static void control_frames(const char *dir)
{
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    Caveat__Wire__Hello hello = CAVEAT__WIRE__HELLO__INIT;
    hello.has_version = hello.has_credit = true;
    hello.version = 1;
    hello.credit = 64;
    hello.client = "libcaveat/0.1";
    hello.feed = "ctio";
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_HELLO;
    frame.hello = &hello;
    write_frame(dir, "hello", &frame);

    Caveat__Wire__DeliveryAck ack = CAVEAT__WIRE__DELIVERY_ACK__INIT;
    ack.has_up_to = ack.has_credit = true;
    ack.up_to = 12345;
    ack.credit = 8;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_DELIVERY_ACK;
    frame.delivery_ack = &ack;
    write_frame(dir, "delivery_ack", &frame);

    char *args[] = {"dry-run"};
    Caveat__Wire__AdminRequest admin = CAVEAT__WIRE__ADMIN_REQUEST__INIT;
    admin.command = "purge";
    admin.n_args = 1;
    admin.args = args;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_ADMIN_REQUEST;
    frame.admin_request = &admin;
    write_frame(dir, "admin_request", &frame);

    Caveat__Wire__Error error = CAVEAT__WIRE__ERROR__INIT;
    error.has_code = true;
    error.code = 3;
    error.reason = "unsupported";
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_ERROR;
    frame.error = &error;
    write_frame(dir, "error", &frame);

    Caveat__Wire__Heartbeat heartbeat = CAVEAT__WIRE__HEARTBEAT__INIT;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_HEARTBEAT;
    frame.heartbeat = &heartbeat;
    write_frame(dir, "heartbeat", &frame);
}

/*  Feedback, its answer, and the Delivery that carries it to the report's
 *  originator. */
static void feedback_frames(const char *dir)
{
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    Caveat__Wire__Feedback feedback = CAVEAT__WIRE__FEEDBACK__INIT;
    feedback.report_id = "r-019ad5e3c2a0a1b2c3d4e5f6";
    feedback.value = "action_taken";
    feedback.text = "adopted into Channel";
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_FEEDBACK;
    frame.feedback = &feedback;
    write_frame(dir, "feedback", &frame);

    Caveat__Wire__FeedbackAck ack = CAVEAT__WIRE__FEEDBACK_ACK__INIT;
    ack.report_id = feedback.report_id;
    ack.has_status = true;
    ack.status = CAVEAT__WIRE__STATUS__OK;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_FEEDBACK_ACK;
    frame.feedback_ack = &ack;
    write_frame(dir, "feedback_ack", &frame);

    Caveat__Wire__FeedbackNote note = CAVEAT__WIRE__FEEDBACK_NOTE__INIT;
    note.report_id = feedback.report_id;
    note.from = "hull-cc";
    note.value = feedback.value;
    note.text = feedback.text;
    note.time = "2026-12-02T15:04:46Z";
    Caveat__Wire__Delivery delivery = CAVEAT__WIRE__DELIVERY__INIT;
    delivery.has_seq = true;
    delivery.seq = 4;
    delivery.report_id = feedback.report_id;
    delivery.feedback = &note;
    write_deliver(dir, "deliver_feedback", &delivery);
}

static void report_frames(const char *dir)
{
    Caveat__Report *reports[] = {example_report("vulnerable_individual"),
                                 example_report("community_tension")};
    Caveat__Wire__Frame frame = CAVEAT__WIRE__FRAME__INIT;
    Caveat__Wire__Publish publish = CAVEAT__WIRE__PUBLISH__INIT;
    publish.has_batch = true;
    publish.batch = 7;
    publish.n_reports = 2;
    publish.reports = reports;
    frame.body_case = CAVEAT__WIRE__FRAME__BODY_PUBLISH;
    frame.publish = &publish;
    write_frame(dir, "publish", &frame);

    char *rules[] = {"safeguarding-referral"};
    Caveat__Wire__Delivery delivery = CAVEAT__WIRE__DELIVERY__INIT;
    delivery.has_seq = true;
    delivery.seq = 3;
    delivery.report_id = reports[0]->id;
    delivery.n_rules = 1;
    delivery.rules = rules;
    delivery.report = reports[0];
    write_deliver(dir, "deliver", &delivery);
    for (size_t i = 0; i < sizeof reports / sizeof *reports; i++)
        caveat__report__free_unpacked(reports[i], NULL);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_wire_frame_seeds DIR\n");
        return 2;
    }
    control_frames(argv[1]);
    feedback_frames(argv[1]);
    report_frames(argv[1]);
    return 0;
}
