/*  caveat subscribe: prints each delivery as one JSON line
 *  {"delivery": {"report_id", "seq", "rules", "feed"}, "report": {...}},
 *  and feedback on the agency's own reports as
 *  {"delivery": {...}, "report": null, "feedback": {"report_id", "from",
 *  "value", "text", "time"}},
 *  and acknowledges it only once the line is written and flushed, so a
 *  delivery lost by a crash is delivered again, never dropped. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage[] = "usage: caveat subscribe --broker EP --server-key BROKER.cert "
                            "--cert AGENCY.cert_secret [--feed NAME] [--count N] [--timeout S]";

#define SUBSCRIBE_CREDIT 100
#define DEFAULT_HELLO_MS 10000
#define WAIT_SLICE_MS    60000 /* without --timeout, waits forever in slices */

static void feedback_object(cv_json_writer_t *w, const cv_feedback_note_t *note)
{
    const char *const keys[] = {"report_id", "from", "value", "text", "time"};
    const char *const values[] = {note->report_id, note->from, note->value, note->text, note->time};
    cv_json_key(w, "feedback");
    cv_json_object_begin(w);
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        cv_json_key(w, keys[i]);
        cv_json_string(w, values[i]);
    }
    cv_json_object_end(w);
}

static char *delivery_line(const cv_delivery_t *d)
{
    cv_json_writer_t *w = cv_json_writer_new(0);
    if (!w)
        return NULL;
    cv_json_object_begin(w);
    cv_json_key(w, "delivery");
    cv_json_object_begin(w);
    cv_json_key(w, "report_id");
    cv_json_string(w, d->report_id ? d->report_id : d->report ? d->report->id : NULL);
    cv_json_key(w, "seq");
    cv_json_uint(w, d->seq);
    cv_json_key(w, "rules");
    cv_json_array_begin(w);
    for (size_t i = 0; i < d->n_rules; i++)
        cv_json_string(w, d->rules[i]);
    cv_json_array_end(w);
    cv_json_key(w, "feed");
    cv_json_string(w, d->feed && *d->feed ? d->feed : NULL);
    cv_json_object_end(w);
    cv_json_key(w, "report");
    if (d->report)
        cv_json_message(w, &d->report->base);
    else
        cv_json_string(w, NULL);
    if (d->feedback)
        feedback_object(w, d->feedback);
    cv_json_object_end(w);
    const char *text = cv_json_writer_text(w);
    char *line = text ? strdup(text) : NULL;
    cv_json_writer_destroy(&w);
    return line;
}

/*  Write, flush, then acknowledge: the order is the guarantee. */
static int emit(cv_client_t *client, const cv_delivery_t *d)
{
    char *line = delivery_line(d);
    if (!line)
        return cli_error(CLI_FAILED, "out of memory");
    bool written = printf("%s\n", line) >= 0 && fflush(stdout) == 0;
    free(line);
    if (!written)
        return cli_error(CLI_FAILED, "stdout: write error");
    cv_error_t err;
    if (!cv_client_ack(client, d->seq, &err))
        return cli_error(CLI_FAILED, "%s", err.msg);
    return CLI_OK;
}

/*  Receives until count deliveries (0: no limit), or until timeout_ms pass
 *  without one (-1: never). */
static int run(cv_client_t *client, uint64_t count, int timeout_ms)
{
    uint64_t received = 0;
    while (count == 0 || received < count) {
        cv_error_t err;
        const cv_delivery_t *d =
            cv_client_receive(client, timeout_ms > 0 ? timeout_ms : WAIT_SLICE_MS, &err);
        if (!d && err.code != CV_ERR_TIMEOUT)
            return cli_error(CLI_FAILED, "%s", err.msg);
        if (!d && timeout_ms > 0)
            break;
        if (!d)
            continue;
        int status = emit(client, d);
        if (status != CLI_OK)
            return status;
        received++;
    }
    if (count && received < count)
        return cli_error(CLI_FAILED, "timeout: received %" PRIu64 " of %" PRIu64, received, count);
    return CLI_OK;
}

static bool parse_count(const char *text, uint64_t *count)
{
    char *end = NULL;
    if (!text[0] || strspn(text, "0123456789") != strlen(text))
        return false;
    unsigned long long value = strtoull(text, &end, 10);
    *count = value;
    return *end == '\0' && value > 0 && value != ULLONG_MAX;
}

int cmd_subscribe(int argc, char **argv)
{
    bool missing = false;
    const char *feed = cli_take_option(&argc, argv, "--feed", &missing);
    const char *count_text = cli_take_option(&argc, argv, "--count", &missing);
    cv_client_config_t config = {.feed = feed, .credit = SUBSCRIBE_CREDIT};
    int timeout_ms;
    int status = cli_broker_options(&argc, argv, usage, &config, &timeout_ms);
    if (status != CLI_OK)
        return status;
    if (missing || argc != 1)
        return cli_error(CLI_USAGE, "%s", usage);
    uint64_t count = 0;
    if (count_text && !parse_count(count_text, &count))
        return cli_error(CLI_USAGE, "--count %s: not a positive number", count_text);
    config.timeout_ms = timeout_ms > 0 ? timeout_ms : DEFAULT_HELLO_MS;

    cv_error_t err;
    cv_client_t *client = cv_client_new(&config, &err);
    if (!client)
        return cli_error(CLI_FAILED, "%s", err.msg);
    status = run(client, count, timeout_ms);
    cv_client_destroy(&client);
    return status;
}
