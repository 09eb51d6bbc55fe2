/*  driver.c: libcaveat driven line by line, for the conformance scenarios
 *  (tests/conformance/run.py) that run against both clients.
 *
 *  One process is one client. Commands come on stdin, one a line, fields
 *  separated by tabs; each gets one line of JSON on stdout:
 *
 *    connect ENDPOINT SERVER_CERT CLIENT_CERT FEED CREDIT PUBLISH_ONLY
 *                                    {"ok":true,"agency":A}
 *    publish TIMEOUT_MS REPORT_JSON...
 *                                    {"ok":true,"results":[{report_id,status,reason}]}
 *    receive TIMEOUT_MS              {"ok":true,"delivery":{...}} or {"ok":true} (timeout)
 *    ack UP_TO                       {"ok":true}
 *    admin COMMAND TIMEOUT_MS        {"ok":true,"reply_ok":B,"text":T}
 *
 *  and {"ok":false,"error":MESSAGE} when libcaveat fails. End of input
 *  destroys the client. Only cv_client_new, _publish, _receive, _ack and
 *  _admin are used: all of libcaveat's API a scenario needs, in one file.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caveat.h"
#include "cv_proto.h"

#define MAX_FIELDS 1024

typedef struct {
    char *field[MAX_FIELDS];
    int n;
} command_t;

/*  Splits line (its newline removed) at tabs, in place. */
static void split(char *line, command_t *cmd)
{
    line[strcspn(line, "\n")] = '\0';
    cmd->n = 0;
    for (char *field = line; field && cmd->n < MAX_FIELDS; cmd->n++) {
        cmd->field[cmd->n] = field;
        field = strchr(field, '\t');
        if (field)
            *field++ = '\0';
    }
}

/*  Prints the writer's object, closed, as one line. */
static void reply(cv_json_writer_t *out)
{
    cv_json_object_end(out);
    const char *text = cv_json_writer_text(out);
    printf("%s\n", text ? text : "{\"ok\":false,\"error\":\"out of memory\"}");
    fflush(stdout);
}

static cv_json_writer_t *begin(bool ok)
{
    cv_json_writer_t *out = cv_json_writer_new(0);
    cv_json_object_begin(out);
    cv_json_key(out, "ok");
    cv_json_bool(out, ok);
    return out;
}

static void reply_error(const char *message)
{
    cv_json_writer_t *out = begin(false);
    cv_json_key(out, "error");
    cv_json_string(out, message);
    reply(out);
    cv_json_writer_destroy(&out);
}

static void reply_ok(void)
{
    cv_json_writer_t *out = begin(true);
    reply(out);
    cv_json_writer_destroy(&out);
}

static cv_client_t *connect_client(const command_t *cmd)
{
    if (cmd->n != 7) {
        reply_error("driver: connect takes 6 arguments");
        return NULL;
    }
    cv_client_config_t config = {
        .endpoint = cmd->field[1],
        .server_cert = cmd->field[2],
        .client_cert = cmd->field[3],
        .feed = cmd->field[4],
        .credit = (uint32_t)strtoul(cmd->field[5], NULL, 10),
        .publish_only = strcmp(cmd->field[6], "1") == 0,
        .timeout_ms = 3000,
    };
    cv_error_t err = {0};
    cv_client_t *client = cv_client_new(&config, &err);
    if (!client) {
        reply_error(err.msg);
        return NULL;
    }
    cv_json_writer_t *out = begin(true);
    cv_json_key(out, "agency");
    cv_json_string(out, cv_client_agency(client));
    reply(out);
    cv_json_writer_destroy(&out);
    return client;
}

static void write_results(cv_json_writer_t *out, const cv_publish_result_t *results, size_t n)
{
    cv_json_key(out, "results");
    cv_json_array_begin(out);
    for (size_t i = 0; i < n; i++) {
        cv_json_object_begin(out);
        cv_json_key(out, "report_id");
        cv_json_string(out, results[i].report_id);
        cv_json_key(out, "status");
        cv_json_string(out, cv_status_name(results[i].status));
        cv_json_key(out, "reason");
        cv_json_string(out, results[i].reason);
        cv_json_object_end(out);
    }
    cv_json_array_end(out);
}

static void publish(cv_client_t *client, const command_t *cmd)
{
    size_t n = cmd->n > 2 ? (size_t)cmd->n - 2 : 0;
    Caveat__Report **reports = calloc(n + 1, sizeof *reports);
    cv_publish_result_t *results = calloc(n + 1, sizeof *results);
    cv_error_t err = {0};
    size_t parsed = 0;
    while (reports && parsed < n &&
           (reports[parsed] =
                (Caveat__Report *)cv_json_parse(cv_schema_report(), cmd->field[parsed + 2],
                                                strlen(cmd->field[parsed + 2]), "report", &err)))
        parsed++;
    if (!reports || !results) {
        reply_error("out of memory");
    } else if (parsed < n) {
        reply_error(err.msg);
    } else {
        int refused = cv_client_publish(client, (const Caveat__Report *const *)reports, n, results,
                                        atoi(cmd->field[1]), &err);
        cv_json_writer_t *out = begin(refused >= 0);
        if (refused < 0) {
            cv_json_key(out, "error");
            cv_json_string(out, err.msg);
        }
        write_results(out, results, n);
        reply(out);
        cv_json_writer_destroy(&out);
        cv_publish_results_clear(results, n);
    }
    for (size_t i = 0; reports && i < parsed; i++)
        protobuf_c_message_free_unpacked(&reports[i]->base, NULL);
    free(reports);
    free(results);
}

static void receive(cv_client_t *client, const command_t *cmd)
{
    cv_error_t err = {0};
    const cv_delivery_t *delivery =
        cv_client_receive(client, cmd->n > 1 ? atoi(cmd->field[1]) : 0, &err);
    if (!delivery && err.msg[0]) {
        reply_error(err.msg);
        return;
    }
    cv_json_writer_t *out = begin(true);
    if (delivery) { /* written as the wire's Delivery, the form both clients compare */
        Caveat__Wire__Delivery wire = CAVEAT__WIRE__DELIVERY__INIT;
        wire.has_seq = true;
        wire.seq = delivery->seq;
        wire.report_id = (char *)delivery->report_id;
        wire.n_rules = delivery->n_rules;
        wire.rules = (char **)delivery->rules;
        wire.feed = (char *)delivery->feed;
        wire.report = (Caveat__Report *)delivery->report;
        cv_json_key(out, "delivery");
        cv_json_message(out, &wire.base);
    }
    reply(out);
    cv_json_writer_destroy(&out);
}

static void ack(cv_client_t *client, const command_t *cmd)
{
    cv_error_t err = {0};
    uint64_t up_to = cmd->n > 1 ? strtoull(cmd->field[1], NULL, 10) : 0;
    if (cv_client_ack(client, up_to, &err))
        reply_ok();
    else
        reply_error(err.msg);
}

static void admin(cv_client_t *client, const command_t *cmd)
{
    cv_error_t err = {0};
    bool ok = false;
    char *text =
        cmd->n == 3 ? cv_client_admin(client, cmd->field[1], &ok, atoi(cmd->field[2]), &err) : NULL;
    if (!text) {
        reply_error(cmd->n == 3 ? err.msg : "driver: admin takes 2 arguments");
        return;
    }
    cv_json_writer_t *out = begin(true);
    cv_json_key(out, "reply_ok");
    cv_json_bool(out, ok);
    cv_json_key(out, "text");
    cv_json_string(out, text);
    reply(out);
    cv_json_writer_destroy(&out);
    free(text);
}

static void run(cv_client_t **client, const command_t *cmd)
{
    const char *verb = cmd->field[0];
    if (strcmp(verb, "connect") == 0 && !*client)
        *client = connect_client(cmd);
    else if (!*client)
        reply_error("driver: not connected");
    else if (strcmp(verb, "publish") == 0)
        publish(*client, cmd);
    else if (strcmp(verb, "receive") == 0)
        receive(*client, cmd);
    else if (strcmp(verb, "ack") == 0)
        ack(*client, cmd);
    else if (strcmp(verb, "admin") == 0)
        admin(*client, cmd);
    else
        reply_error("driver: unknown command");
}

int main(void)
{
    cv_client_t *client = NULL;
    char *line = NULL;
    size_t size = 0;
    command_t cmd;
    while (getline(&line, &size, stdin) > 0) {
        split(line, &cmd);
        run(&client, &cmd);
    }
    free(line);
    cv_client_destroy(&client);
    return 0;
}
