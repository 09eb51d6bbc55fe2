/*  caveat policy views FILE --report R: one report as every agency would
 *  receive it, side by side. Rows are the fields present in the report,
 *  columns the agencies that receive it; "-" marks a withheld field. The
 *  agencies that receive nothing are listed after the table, with why. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli.h"

typedef struct {
    int agency;
    Caveat__Report *view;
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

/*  Prints text in a cell of width display columns, cut on a UTF-8
 *  character boundary and padded with spaces. */
static void cell(const char *text, int width)
{
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

static void print_row(const Caveat__Report *report, int node, const column_t *cols, int n,
                      int path_width, int width)
{
    char *original = joined_values(&report->base, node);
    if (!original)
        return;
    free(original);
    cell(cv_schema_node(cv_schema_report(), node)->path, path_width);
    for (int c = 0; c < n; c++) {
        char *value = joined_values(&cols[c].view->base, node);
        cell(value ? value : "-", width);
        free(value);
    }
    putchar('\n');
}

static void print_table(const cv_policy_t *policy, const Caveat__Report *report,
                        const column_t *cols, int n)
{
    const cv_schema_t *schema = cv_schema_report();
    int path_width = 26;
    int width = n ? (terminal_width() - path_width) / n : 0;
    if (width < 12)
        width = 12;
    cell("field", path_width);
    for (int c = 0; c < n; c++)
        cell(cv_policy_agency(policy, cols[c].agency)->id, width);
    putchar('\n');
    for (int node = 0; node < cv_schema_size(schema); node++)
        if (cv_schema_node(schema, node)->is_leaf)
            print_row(report, node, cols, n, path_width, width);
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

static int views(const cv_policy_t *policy, const Caveat__Report *report)
{
    int n_agencies = cv_policy_agency_count(policy), n = 0;
    column_t *cols = calloc((size_t)n_agencies, sizeof *cols);
    cv_decision_t *decision = cv_decision_new();
    for (int a = 0; cols && a < n_agencies; a++)
        if (cv_policy_decide(policy, report, a, NULL, decision))
            cols[n++] = (column_t){a, cv_decision_view(decision, report)};
    printf("report %s  %s from %s at %s\n", report->id ? report->id : "(no id)", report->category,
           report->originator, report->handling_level);
    print_table(policy, report, cols, n);
    print_refused(policy, report, decision);
    for (int c = 0; c < n; c++)
        protobuf_c_message_free_unpacked(&cols[c].view->base, NULL);
    free(cols);
    cv_decision_destroy(&decision);
    return CLI_OK;
}

int cmd_policy_views(int argc, char **argv)
{
    bool missing = false;
    const char *report_path = cli_take_option(&argc, argv, "--report", &missing);
    const char *data = cli_take_option(&argc, argv, "--data", &missing);
    if (argc != 2 || !report_path || missing)
        return cli_error(CLI_USAGE, "usage: caveat policy views FILE --report REPORT.json "
                                    "[--data DIR]");
    cv_policy_t *policy = cli_load_policy(argv[1], data);
    if (!policy)
        return CLI_USAGE;
    Caveat__Report *report = cli_load_report(policy, report_path);
    int status = report ? views(policy, report) : CLI_USAGE;
    if (report)
        protobuf_c_message_free_unpacked(&report->base, NULL);
    cv_policy_destroy(&policy);
    return status;
}
