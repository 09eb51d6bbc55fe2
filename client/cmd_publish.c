/*  caveat publish: reads one JSON report (pretty-printed or not) or JSON
 *  lines, publishes them all, and waits until the broker has stored each
 *  one durably. Prints the id of every accepted report; a refused one gets
 *  one line on stderr and exit status 1. Nothing is sent unless the whole
 *  input parses. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <czmq.h>

#include "cli.h"

static const char usage[] = "usage: caveat publish --broker EP --server-key BROKER.cert "
                            "--cert AGENCY.cert_secret [--timeout S] [FILE|-]";

typedef struct {
    Caveat__Report **items;
    size_t n, cap;
} reports_t;

static void reports_clear(reports_t *reports)
{
    for (size_t i = 0; i < reports->n; i++)
        caveat__report__free_unpacked(reports->items[i], NULL);
    free(reports->items);
    *reports = (reports_t){0};
}

static bool reports_add(reports_t *reports, ProtobufCMessage *msg, cv_error_t *err)
{
    if (reports->n == reports->cap) {
        size_t cap = reports->cap ? 2 * reports->cap : 16;
        Caveat__Report **items = realloc(reports->items, cap * sizeof *items);
        if (!items) {
            protobuf_c_message_free_unpacked(msg, NULL);
            cv_error_set(err, NULL, 0, 0, "out of memory");
            return false;
        }
        reports->items = items;
        reports->cap = cap;
    }
    reports->items[reports->n++] = (Caveat__Report *)msg;
    return true;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool blank(const char *text, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!is_space(text[i]))
            return false;
    return true;
}

/*  The next line of buf from *pos (without its newline), or false at the
 *  end. */
static bool next_line(const char *buf, size_t len, size_t *pos, const char **line, size_t *line_len)
{
    if (*pos >= len)
        return false;
    const char *start = buf + *pos;
    const char *nl = memchr(start, '\n', len - *pos);
    *line = start;
    *line_len = nl ? (size_t)(nl - start) : len - *pos;
    *pos += *line_len + (nl ? 1 : 0);
    return true;
}

/*  JSON lines rather than one document: the first non-blank line is a
 *  whole object on its own, and more follows. (A pretty-printed report's
 *  first line is an unfinished "{".) */
static bool looks_like_json_lines(const char *buf, size_t len)
{
    size_t pos = 0, line_len = 0;
    const char *line = buf;
    while (next_line(buf, len, &pos, &line, &line_len) && blank(line, line_len))
        ;
    while (line_len && is_space(line[line_len - 1]))
        line_len--;
    while (line_len && is_space(*line)) {
        line++;
        line_len--;
    }
    return line_len >= 2 && line[0] == '{' && line[line_len - 1] == '}' &&
           !blank(buf + pos, len - pos);
}

/*  cv_json_parse numbers lines from the start of the text it is given;
 *  the error of a JSON line must name its line in the file. */
static void shift_line(cv_error_t *err, const char *name, int lines_before)
{
    size_t n = strlen(name);
    if (strncmp(err->msg, name, n) != 0 || err->msg[n] != ':')
        return;
    char *end = NULL;
    long line = strtol(err->msg + n + 1, &end, 10);
    if (end == err->msg + n + 1 || *end != ':')
        return;
    char rest[sizeof err->msg];
    snprintf(rest, sizeof rest, "%s", end);
    cv_error_set(err, NULL, 0, 0, "%s:%ld%s", name, line + lines_before, rest);
}

static bool parse_lines(const char *buf, size_t len, const char *name, reports_t *reports,
                        cv_error_t *err)
{
    const cv_schema_t *schema = cv_schema_report();
    size_t pos = 0, line_len;
    const char *line;
    for (int number = 1; next_line(buf, len, &pos, &line, &line_len); number++) {
        if (blank(line, line_len))
            continue;
        ProtobufCMessage *msg = cv_json_parse(schema, line, line_len, name, err);
        if (!msg) {
            shift_line(err, name, number - 1);
            return false;
        }
        if (!reports_add(reports, msg, err))
            return false;
    }
    return true;
}

static bool parse_input(const char *buf, size_t len, const char *name, reports_t *reports,
                        cv_error_t *err)
{
    if (blank(buf, len)) {
        cv_error_set(err, name, 0, 0, "no report");
        return false;
    }
    ProtobufCMessage *msg = cv_json_parse(cv_schema_report(), buf, len, name, err);
    if (msg)
        return reports_add(reports, msg, err);
    /* keeps the whole document's error unless the text is JSON lines */
    return looks_like_json_lines(buf, len) && parse_lines(buf, len, name, reports, err);
}

/*  Accepted ids on stdout, one line per refusal on stderr. */
static int print_results(const cv_publish_result_t *results, size_t n, bool complete)
{
    for (size_t i = 0; i < n; i++)
        if (results[i].status == CAVEAT__WIRE__STATUS__OK)
            printf("%s\n", results[i].report_id);
    int status = fflush(stdout) == 0 && !ferror(stdout)
                     ? CLI_OK
                     : cli_error(CLI_FAILED, "stdout: write error");
    for (size_t i = 0; complete && i < n; i++) {
        const cv_publish_result_t *r = &results[i];
        if (r->status != CAVEAT__WIRE__STATUS__OK)
            status = cli_error(CLI_FAILED, "report %zu (%s): refused: %s", i + 1, r->report_id,
                               *r->reason ? r->reason : cv_status_name(r->status));
    }
    return status;
}

static int publish(const cv_client_config_t *config, reports_t *reports, int timeout_ms)
{
    int64_t deadline = zclock_mono() + timeout_ms;
    cv_error_t err;
    cv_client_t *client = cv_client_new(config, &err);
    if (!client)
        return cli_error(CLI_FAILED, "%s", err.msg);
    cv_publish_result_t *results = calloc(reports->n, sizeof *results);
    int64_t left = deadline - zclock_mono();
    int refused = results ? cv_client_publish(client, (const Caveat__Report *const *)reports->items,
                                              reports->n, results, left > 0 ? (int)left : 1, &err)
                          : (cv_error_set(&err, NULL, 0, 0, "out of memory"), -1);
    cv_client_destroy(&client);
    int status = results ? print_results(results, reports->n, refused >= 0) : CLI_FAILED;
    if (refused < 0)
        status = cli_error(CLI_FAILED, "%s", err.msg);
    cv_publish_results_clear(results, reports->n);
    free(results);
    return status;
}

int cmd_publish(int argc, char **argv)
{
    cv_client_config_t config = {.publish_only = true}; /* leaves the agency's subscriber be */
    int timeout_ms;
    int status = cli_broker_options(&argc, argv, usage, &config, &timeout_ms);
    if (status != CLI_OK)
        return status;
    if (argc > 2 || (argc == 2 && argv[1][0] == '-' && argv[1][1]))
        return cli_error(CLI_USAGE, "%s", usage);
    const char *path = argc == 2 ? argv[1] : "-";
    const char *name = strcmp(path, "-") == 0 ? "<stdin>" : path;
    size_t len = 0;
    char *buf = cv_read_file(path, &len);
    if (!buf)
        return cli_error(CLI_USAGE, "%s: %s", name, strerror(errno));
    reports_t reports = {0};
    cv_error_t err;
    bool parsed = parse_input(buf, len, name, &reports, &err);
    free(buf);
    if (!parsed) {
        reports_clear(&reports);
        return cli_error(CLI_USAGE, "%s", err.msg);
    }
    config.timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;
    status = publish(&config, &reports, config.timeout_ms);
    reports_clear(&reports);
    return status;
}
