/*  caveat policy check|explain|graph|diff: the protocol administrator's
 *  tools. (`policy test` is in cmd_policy_test.c.) */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cv_policy_sig.h"

/*  With --signers, the bytes read must carry a signature by one of them,
 *  as caveatd started with --policy-signers requires; false after the
 *  error. */
static bool signed_by(const char *path, const char *text, size_t len, const char *signers_path,
                      cv_signer_t *by)
{
    cv_error_t err = {0};
    cv_signers_t *signers = cv_signers_load(signers_path, &err);
    bool ok = signers && cv_sig_verify_file(path, text, len, signers, by, &err);
    if (!ok)
        fprintf(stderr, "%s\n", err.msg);
    cv_signers_destroy(&signers);
    return ok;
}

/*  Errors and warnings go to stderr as they are found; check counts them. */
static void print_line(const char *line, void *count)
{
    fprintf(stderr, "%s\n", line);
    ++*(int *)count;
}

/*  caveat policy check FILE [--strict] [--signers SIGNERS]: the signature
 *  first, then every error, else the warnings and a summary. Exit 1 on a
 *  bad signature or an error, or on a warning with --strict. */
static int policy_check(int argc, char **argv)
{
    bool missing = false;
    const char *signers = cli_take_option(&argc, argv, "--signers", &missing);
    bool strict = cli_take_flag(&argc, argv, "--strict");
    if (argc != 2 || missing)
        return cli_error(CLI_USAGE,
                         "usage: caveat policy check FILE [--strict] [--signers SIGNERS]");
    const char *path = argv[1];
    size_t len = 0;
    char *text = cv_read_file(path, &len);
    int errors = 0, warnings = 0;
    cv_signer_t by = {"", ""};
    cv_policy_t *policy = NULL;
    if (!text)
        cli_error(CLI_FAILED, "%s: cannot open: %s", path, strerror(errno));
    else if (!signers || signed_by(path, text, len, signers, &by))
        policy = cv_policy_load_buffer_each(text, len, path, NULL, print_line, &errors, NULL);
    if (policy)
        cv_policy_lint(policy, text, len, print_line, &warnings);
    free(text);
    if (!policy) {
        if (errors > 1)
            cli_error(CLI_FAILED, "%s: %d errors", path, errors);
        return CLI_FAILED;
    }
    printf("%s: ok: protocol %s version %lld, %d agencies", path, cv_policy_protocol(policy),
           (long long)cv_policy_version(policy), cv_policy_agency_count(policy));
    if (signers)
        printf(", signed by %s (key ID %s)", by.name, by.key_id);
    if (warnings)
        printf(", %d warning%s", warnings, warnings == 1 ? "" : "s");
    putchar('\n');
    cv_policy_destroy(&policy);
    if (strict && warnings)
        return cli_error(CLI_FAILED, "%s: --strict: warnings are errors", path);
    return CLI_OK;
}

static int print_and_free(char *text)
{
    if (!text)
        return cli_error(CLI_FAILED, "out of memory");
    fputs(text, stdout);
    free(text);
    return CLI_OK;
}

static int policy_graph(int argc, char **argv)
{
    if (argc != 2)
        return cli_error(CLI_USAGE, "usage: caveat policy graph FILE");
    cv_policy_t *policy = cli_load_policy(argv[1], NULL);
    if (!policy)
        return CLI_USAGE;
    int status = print_and_free(cv_policy_graph(policy));
    cv_policy_destroy(&policy);
    return status;
}

/*  caveat policy diff OLD NEW: like diff(1), exit 0 when nothing differs,
 *  1 when anything does, 2 for bad input. A change without a higher
 *  version is flagged: audit records and reviewers name policies by it. */
static int policy_diff(int argc, char **argv)
{
    if (argc != 3)
        return cli_error(CLI_USAGE, "usage: caveat policy diff OLD NEW");
    cv_policy_t *old_policy = cli_load_policy(argv[1], NULL);
    cv_policy_t *new_policy = old_policy ? cli_load_policy(argv[2], NULL) : NULL;
    char *text = new_policy ? cv_policy_diff(old_policy, new_policy) : NULL;
    int status = CLI_USAGE;
    if (new_policy && !text)
        status = cli_error(CLI_USAGE, "out of memory");
    else if (text) {
        fputs(text, stdout);
        status = *text ? CLI_FAILED : CLI_OK;
        if (*text && cv_policy_version(new_policy) <= cv_policy_version(old_policy))
            cli_error(status, "warning: %s: version %lld was not raised (%s has %lld)", argv[2],
                      (long long)cv_policy_version(new_policy), argv[1],
                      (long long)cv_policy_version(old_policy));
    }
    free(text);
    cv_policy_destroy(&old_policy);
    cv_policy_destroy(&new_policy);
    return status;
}

/*  The formatted text replaces path's: written beside it, then renamed
 *  over it, so a failure leaves the file as it was. The mode is kept. */
static int write_in_place(const char *path, const char *text)
{
    struct stat st;
    char *temp = NULL;
    if (stat(path, &st) != 0 || asprintf(&temp, "%s.fmt-XXXXXX", path) < 0)
        return cli_error(CLI_USAGE, "%s: %s", path, strerror(errno));
    int fd = mkstemp(temp);
    FILE *out = fd >= 0 ? fdopen(fd, "w") : NULL;
    bool ok = out && fputs(text, out) >= 0 && fchmod(fd, st.st_mode & 07777) == 0;
    ok = out && fclose(out) == 0 && ok;
    if (!out && fd >= 0)
        close(fd);
    ok = ok && rename(temp, path) == 0;
    if (!ok) {
        cli_error(CLI_USAGE, "%s: cannot write: %s", path, strerror(errno));
        unlink(temp);
    }
    free(temp);
    return ok ? CLI_OK : CLI_USAGE;
}

/*  caveat policy fmt FILE [--check | -i]: the canonical layout on stdout;
 *  --check exits 1 when FILE is not in it; -i/--write rewrites FILE. */
static int policy_fmt(int argc, char **argv)
{
    bool check = cli_take_flag(&argc, argv, "--check");
    bool write = cli_take_flag(&argc, argv, "-i") || cli_take_flag(&argc, argv, "--write");
    if (argc != 2 || (check && write))
        return cli_error(CLI_USAGE, "usage: caveat policy fmt FILE [--check | -i]");
    const char *path = argv[1];
    size_t len = 0;
    char *text = cv_read_file(path, &len);
    if (!text)
        return cli_error(CLI_USAGE, "%s: cannot open: %s", path, strerror(errno));
    cv_error_t err;
    char *formatted = cv_policy_format(text, len, path, &err);
    int status = CLI_OK;
    if (!formatted) {
        fprintf(stderr, "%s\n", err.msg);
        status = CLI_USAGE;
    } else if (check) {
        bool same = strlen(formatted) == len && memcmp(formatted, text, len) == 0;
        if (!same)
            status =
                cli_error(CLI_FAILED, "%s: not formatted (caveat policy fmt -i %s)", path, path);
    } else if (write) {
        if (strlen(formatted) != len || memcmp(formatted, text, len) != 0)
            status = write_in_place(path, formatted);
    } else {
        fputs(formatted, stdout);
    }
    free(formatted);
    free(text);
    return status;
}

/* ------------------------------------------------------------------------ */
/*  explain: one JSON object, the shape docs/policy.md gives.               */

Caveat__Report *cli_load_report(const cv_policy_t *policy, const char *path)
{
    size_t len;
    char *buf = cv_read_file(path, &len);
    if (!buf) {
        cli_error(CLI_USAGE, "%s: cannot read", path);
        return NULL;
    }
    cv_error_t err;
    ProtobufCMessage *msg = cv_json_parse(cv_schema_report(), buf, len, path, &err);
    free(buf);
    if (!msg) {
        fprintf(stderr, "%s\n", err.msg);
        return NULL;
    }
    Caveat__Report *report = (Caveat__Report *)msg;
    if (!cv_policy_validate_report(policy, report, &err)) {
        cli_error(CLI_USAGE, "%s: %s", path, err.msg);
        protobuf_c_message_free_unpacked(msg, NULL);
        return NULL;
    }
    return report;
}

static void string_list(cv_json_writer_t *out, const char *key, int count,
                        const char *(*item)(const cv_decision_t *, int),
                        const cv_decision_t *decision)
{
    cv_json_key(out, key);
    cv_json_array_begin(out);
    for (int i = 0; i < count; i++)
        cv_json_string(out, item(decision, i));
    cv_json_array_end(out);
}

static void field_list(cv_json_writer_t *out, const cv_decision_t *decision)
{
    cv_json_key(out, "fields");
    cv_json_array_begin(out);
    for (int i = 0; i < cv_decision_field_count(decision); i++) {
        const cv_field_decision_t *f = cv_decision_field(decision, i);
        cv_json_object_begin(out);
        cv_json_key(out, "path");
        cv_json_string(out, f->path);
        cv_json_key(out, "decision");
        cv_json_string(out, f->decision);
        cv_json_key(out, "why");
        cv_json_string(out, f->why);
        cv_json_object_end(out);
    }
    cv_json_array_end(out);
}

/*  {"delivered", "feed", "rules", "report", "fields", "reasons", "told"}:
 *  "rules" released the report, "told" is what the recipient is sent. */
void cli_explanation(cv_json_writer_t *out, const cv_decision_t *decision,
                     const Caveat__Report *view)
{
    cv_json_object_begin(out);
    cv_json_key(out, "delivered");
    cv_json_bool(out, cv_decision_delivered(decision));
    cv_json_key(out, "feed");
    cv_json_string(out, cv_decision_feed(decision));
    string_list(out, "rules", cv_decision_entry_count(decision), cv_decision_entry_name, decision);
    if (view) {
        cv_json_key(out, "report");
        cv_json_message(out, &view->base);
    }
    field_list(out, decision);
    string_list(out, "reasons", cv_decision_reason_count(decision), cv_decision_reason, decision);
    string_list(out, "told", cv_decision_told_count(decision), cv_decision_told_name, decision);
    cv_json_object_end(out);
}

/*  --approve WHO may repeat: releases of a handling-code-5 report. */
static void take_approvals(int *argc, char **argv, const char **to, size_t *count, size_t max)
{
    bool missing = false;
    const char *who;
    while (*count < max && (who = cli_take_option(argc, argv, "--approve", &missing)) && !missing)
        to[(*count)++] = who;
}

static int explain(const cv_policy_t *policy, const Caveat__Report *report, int recipient,
                   const cv_approvals_t *approvals)
{
    cv_decision_t *decision = cv_decision_new();
    cv_policy_decide(policy, report, recipient, approvals, decision);
    Caveat__Report *view = cv_decision_view(decision, report);
    cv_json_writer_t *out = cv_json_writer_new(isatty(STDOUT_FILENO) ? CV_JSON_PRETTY : 0);
    const char *text = NULL;
    if (out) {
        cli_explanation(out, decision, view);
        text = cv_json_writer_text(out);
    }
    int status = text ? (puts(text), CLI_OK) : cli_error(CLI_FAILED, "out of memory");
    cv_json_writer_destroy(&out);
    if (view)
        protobuf_c_message_free_unpacked(&view->base, NULL);
    cv_decision_destroy(&decision);
    return status;
}

static int policy_explain(int argc, char **argv)
{
    bool missing = false;
    const char *report_path = cli_take_option(&argc, argv, "--report", &missing);
    const char *to = cli_take_option(&argc, argv, "--to", &missing);
    const char *data = cli_take_option(&argc, argv, "--data", &missing);
    const char *approved[64];
    cv_approvals_t approvals = {approved, 0};
    take_approvals(&argc, argv, approved, &approvals.count, 64);
    if (argc != 2 || !report_path || !to || missing)
        return cli_error(CLI_USAGE, "usage: caveat policy explain FILE --report REPORT.json "
                                    "--to AGENCY [--approve WHO]... [--data DIR]");
    cv_policy_t *policy = cli_load_policy(argv[1], data);
    if (!policy)
        return CLI_USAGE;
    int status = CLI_USAGE;
    int recipient = cv_policy_agency_find(policy, to);
    Caveat__Report *report = NULL;
    if (recipient < 0)
        cli_error(CLI_USAGE, "%s: no agency '%s' in the policy", argv[1], to);
    else if ((report = cli_load_report(policy, report_path)))
        status = explain(policy, report, recipient, &approvals);
    if (report)
        protobuf_c_message_free_unpacked(&report->base, NULL);
    cv_policy_destroy(&policy);
    return status;
}

int cmd_policy(int argc, char **argv)
{
    if (argc < 2)
        return cli_error(
            CLI_USAGE,
            "usage: caveat policy check|explain|test|graph|diff|views|fmt|sign|signer-key ...");
    const char *verb = argv[1];
    if (strcmp(verb, "check") == 0)
        return policy_check(argc - 1, argv + 1);
    if (strcmp(verb, "explain") == 0)
        return policy_explain(argc - 1, argv + 1);
    if (strcmp(verb, "views") == 0)
        return cmd_policy_views(argc - 1, argv + 1);
    if (strcmp(verb, "test") == 0)
        return cmd_policy_test(argc - 1, argv + 1);
    if (strcmp(verb, "graph") == 0)
        return policy_graph(argc - 1, argv + 1);
    if (strcmp(verb, "diff") == 0)
        return policy_diff(argc - 1, argv + 1);
    if (strcmp(verb, "fmt") == 0)
        return policy_fmt(argc - 1, argv + 1);
    if (strcmp(verb, "sign") == 0)
        return cmd_policy_sign(argc - 1, argv + 1);
    if (strcmp(verb, "signer-key") == 0)
        return cmd_policy_signer_key(argc - 1, argv + 1);
    return cli_error(CLI_USAGE, "unknown policy command '%s'", verb);
}
