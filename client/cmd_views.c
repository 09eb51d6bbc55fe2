/*  Reports side by side, one column per recipient, one row per field; "-"
 *  marks a withheld field.
 *
 *  caveat policy views FILE --report R: every agency's view as the policy
 *  would make it, then the fields restrictions capped in them and by which
 *  restriction, then the agencies that would receive nothing, and why.
 *  caveat received LABEL=FILE...: what subscribers really received, from
 *  the JSON lines `caveat subscribe` wrote, one table per report. */
#include <libfyaml.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli.h"
#include "cv_alloc.h"
#include "received.h"

typedef struct {
    const char *label;
    Caveat__Report *view;
    const char *feed; /* the screening feed it went out on, not a rule; or NULL */
    char *restricted; /* "  AGENCY  PATH: WHY" lines, or NULL */
} column_t;

static int terminal_width(void)
{
    struct winsize ws;
    const char *env = getenv("COLUMNS");
    if (env && atoi(env) > 40)
        return atoi(env);
    if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 40)
        return ws.ws_col;
    return 160;
}

/*  text as cv_text_write writes it (malloc'd; NULL when out of memory):
 *  a value a report or a subscriber's file carries (an escape sequence, a
 *  line feed, bytes that are not UTF-8) cannot redraw the terminal or
 *  forge a row. */
static char *readable(const char *text)
{
    char *out = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&out, &size);
    if (!f)
        return NULL;
    cv_text_write(f, text, strlen(text));
    fclose(f);
    return out;
}

/*  text, made readable, on stdout. */
static void put_readable(const char *text)
{
    char *shown = readable(text ? text : "");
    fputs(shown ? shown : "?", stdout);
    free(shown);
}

/*  Prints text in a cell of width display columns, made readable, cut on
 *  a UTF-8 character boundary and padded with spaces. */
static void cell(const char *value, int width)
{
    char *text = readable(value);
    if (!text) {
        printf("%*s", width, "");
        return;
    }
    int shown = 0;
    const unsigned char *p = (const unsigned char *)text;
    while (*p && shown < width - 1) {
        const unsigned char *start = p++;
        while ((*p & 0xC0) == 0x80)
            p++;
        bool last = shown == width - 2 && *p;
        fwrite(last ? (const unsigned char *)"~" : start, 1, last ? 1 : (size_t)(p - start),
               stdout);
        shown++;
        if (last)
            break;
    }
    printf("%*s", width - shown, "");
    free(text);
}

static char *joined_values(const ProtobufCMessage *msg, int node)
{
    char **values;
    int n = cv_message_values(cv_schema_report(), msg, node, &values);
    if (n == 0)
        return NULL;
    size_t len = 1;
    for (int i = 0; i < n; i++)
        len += strlen(values[i]) + 2;
    char *out = calloc(1, len);
    for (int i = 0; out && i < n; i++) {
        if (i)
            strcat(out, "; ");
        strcat(out, values[i]);
    }
    cv_values_free(values, n);
    return out;
}

static bool has_value(const ProtobufCMessage *msg, int node)
{
    char *text = joined_values(msg, node);
    free(text);
    return text != NULL;
}

/*  A row for a field the original report has, or, with no original, that
 *  any column has. */
static bool shown(const Caveat__Report *original, const column_t *cols, int n, int node)
{
    if (original)
        return has_value(&original->base, node);
    for (int c = 0; c < n; c++)
        if (has_value(&cols[c].view->base, node))
            return true;
    return false;
}

static void print_row(const column_t *cols, int n, int node, int path_width, int width)
{
    cell(cv_schema_node(cv_schema_report(), node)->path, path_width);
    for (int c = 0; c < n; c++) {
        char *value = joined_values(&cols[c].view->base, node);
        cell(value ? value : "-", width);
        free(value);
    }
    putchar('\n');
}

static void print_table(const Caveat__Report *original, const column_t *cols, int n)
{
    const cv_schema_t *schema = cv_schema_report();
    int path_width = 26;
    int width = n ? (terminal_width() - path_width) / n : 0;
    if (width < 12)
        width = 12;
    cell("field", path_width);
    for (int c = 0; c < n; c++) {
        char label[200];
        snprintf(label, sizeof label, "%s%s", cols[c].label, cols[c].feed ? "*" : "");
        cell(label, width);
    }
    putchar('\n');
    for (int node = 0; node < cv_schema_size(schema); node++)
        if (cv_schema_node(schema, node)->is_leaf && shown(original, cols, n, node))
            print_row(cols, n, node, path_width, width);
    for (int c = 0; c < n; c++)
        if (cols[c].feed) {
            fputs("* ", stdout);
            put_readable(cols[c].label);
            fputs(": through the screening feed '", stdout);
            put_readable(cols[c].feed);
            fputs("', not a rule\n", stdout);
        }
}

/*  "report ID  CATEGORY from ORIGINATOR at LEVEL", each made readable. */
static void print_header(const char *id, const Caveat__Report *report)
{
    const char *parts[] = {"report ", id,
                           "  ",      report->category,
                           " from ",  report->originator,
                           " at ",    report->handling_level};
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++)
        i % 2 ? put_readable(parts[i]) : (void)fputs(parts[i], stdout);
    putchar('\n');
}

static void print_refused(const cv_policy_t *policy, const Caveat__Report *report,
                          cv_decision_t *decision)
{
    for (int a = 0; a < cv_policy_agency_count(policy); a++) {
        if (cv_policy_decide(policy, report, a, NULL, decision))
            continue;
        printf("  %-18s not delivered: %s\n", cv_policy_agency(policy, a)->id,
               cv_decision_reason_count(decision) ? cv_decision_reason(decision, 0) : "");
    }
}

/*  The fields of the last decision's view that a restriction capped, one
 *  line each naming it; NULL when none. */
static char *restricted_lines(const char *agency, const cv_decision_t *decision)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    if (!out)
        return NULL;
    for (int i = 0; i < cv_decision_field_count(decision); i++) {
        const cv_field_decision_t *f = cv_decision_field(decision, i);
        if (f->restriction)
            fprintf(out, "  %-18s %s: %s\n", agency, f->path, f->why);
    }
    fclose(out);
    if (text && !*text) {
        free(text);
        text = NULL;
    }
    return text;
}

static int views(const cv_policy_t *policy, const Caveat__Report *report)
{
    int n_agencies = cv_policy_agency_count(policy), n = 0;
    column_t *cols = calloc((size_t)n_agencies, sizeof *cols);
    cv_decision_t *decision = cv_decision_new();
    for (int a = 0; cols && a < n_agencies; a++)
        if (cv_policy_decide(policy, report, a, NULL, decision)) {
            const char *id = cv_policy_agency(policy, a)->id;
            Caveat__Report *view = cv_decision_view(decision, report);
            cols[n++] =
                (column_t){id, view, cv_decision_feed(decision), restricted_lines(id, decision)};
        }
    print_header(report->id ? report->id : "(no id)", report);
    print_table(report, cols, n);
    for (int c = 0; c < n; c++)
        fputs(cols[c].restricted ? cols[c].restricted : "", stdout);
    print_refused(policy, report, decision);
    for (int c = 0; c < n; c++) {
        protobuf_c_message_free_unpacked(&cols[c].view->base, NULL);
        free(cols[c].restricted);
    }
    free(cols);
    cv_decision_destroy(&decision);
    return CLI_OK;
}

/*  {"report": {"id", "category", "originator", "handling_level"},
 *   "agencies": {ID: what `policy explain` prints for it, ...}}: a view's
 *  "feed" says it went out on a screening feed, not by a rule, and each
 *  field's "why" names the entry that granted it. */
static int views_json(const cv_policy_t *policy, const Caveat__Report *report)
{
    cv_json_writer_t *out = cv_json_writer_new(isatty(STDOUT_FILENO) ? CV_JSON_PRETTY : 0);
    cv_decision_t *decision = cv_decision_new();
    if (!out || !decision)
        abort();
    cv_json_object_begin(out);
    cv_json_key(out, "report");
    cv_json_object_begin(out);
    const char *keys[] = {"id", "category", "originator", "handling_level"};
    const char *values[] = {report->id, report->category, report->originator,
                            report->handling_level};
    for (int i = 0; i < 4; i++) {
        cv_json_key(out, keys[i]);
        cv_json_string(out, values[i]);
    }
    cv_json_object_end(out);
    cv_json_key(out, "agencies");
    cv_json_object_begin(out);
    for (int a = 0; a < cv_policy_agency_count(policy); a++) {
        cv_policy_decide(policy, report, a, NULL, decision);
        Caveat__Report *view = cv_decision_view(decision, report);
        cv_json_key(out, cv_policy_agency(policy, a)->id);
        cli_explanation(out, decision, view);
        if (view)
            protobuf_c_message_free_unpacked(&view->base, NULL);
    }
    cv_json_object_end(out);
    cv_json_object_end(out);
    const char *text = cv_json_writer_text(out);
    int status = text ? (puts(text), CLI_OK) : cli_error(CLI_FAILED, "out of memory");
    cv_json_writer_destroy(&out);
    cv_decision_destroy(&decision);
    return status;
}

int cmd_policy_views(int argc, char **argv)
{
    bool missing = false;
    const char *report_path = cli_take_option(&argc, argv, "--report", &missing);
    const char *data = cli_take_option(&argc, argv, "--data", &missing);
    const char *format = cli_take_option(&argc, argv, "--format", &missing);
    bool json = format && strcmp(format, "json") == 0;
    if (argc != 2 || !report_path || missing || (format && !json && strcmp(format, "text") != 0))
        return cli_error(CLI_USAGE, "usage: caveat policy views FILE --report REPORT.json "
                                    "[--data DIR] [--format text|json]");
    cv_policy_t *policy = cli_load_policy(argv[1], data);
    if (!policy)
        return CLI_USAGE;
    Caveat__Report *report = cli_load_report(policy, report_path);
    int status = !report ? CLI_USAGE : json ? views_json(policy, report) : views(policy, report);
    if (report)
        protobuf_c_message_free_unpacked(&report->base, NULL);
    cv_policy_destroy(&policy);
    return status;
}

/* ------------------------------------------------------------------------ */
/*  caveat received LABEL=FILE...                                           */

static bool read_receipts(received_t *all, const char *label, const char *file)
{
    size_t len;
    char *text = cv_read_file(file, &len);
    if (!text)
        return cli_error(CLI_USAGE, "%s: cannot read", file), false;
    bool ok = true;
    for (char *line = text, *end; ok && line < text + len; line = end + 1) {
        end = memchr(line, '\n', (size_t)(text + len - line));
        if (!end)
            end = text + len;
        cv_error_t err = {0};
        ok = end == line || received_read_line(all, label, line, (size_t)(end - line), file, &err);
        if (!ok)
            cli_error(CLI_USAGE, "%s: %s", file, err.msg);
    }
    free(text);
    return ok;
}

/*  A table per report, a column per view. */
static void print_receipts(const received_t *all)
{
    for (int i = 0; i < received_count(all); i++) {
        const received_report_t *r = received_at(all, i);
        column_t *cols = cv_xcalloc((size_t)r->n, sizeof *cols);
        for (int v = 0; v < r->n; v++)
            cols[v] = (column_t){r->views[v].label, r->views[v].view, r->views[v].feed, NULL};
        putchar('\n');
        print_header(r->report_id, cols[0].view);
        print_table(NULL, cols, r->n);
        free(cols);
    }
}

int cmd_received(int argc, char **argv)
{
    if (argc < 2)
        return cli_error(CLI_USAGE, "usage: caveat received LABEL=FILE...");
    received_t *all = received_new();
    bool ok = true;
    for (int i = 1; ok && i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq) {
            cli_error(CLI_USAGE, "%s: expected LABEL=FILE", argv[i]);
            ok = false;
        } else {
            *eq = '\0';
            ok = read_receipts(all, argv[i], eq + 1);
        }
    }
    if (ok)
        print_receipts(all);
    received_destroy(&all);
    return ok ? CLI_OK : CLI_USAGE;
}
