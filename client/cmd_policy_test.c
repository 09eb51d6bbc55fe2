/*  caveat policy test FILE CASES.yaml [--data DIR] [--verbose] [--coverage]
 *                    [--format text|json|junit]
 *
 *  Runs a protocol's test cases (policy_cases.c reads and runs them). Exit
 *  0 when every case passes, 1 when any fails, 2 for bad input (the policy,
 *  the cases file or a report is malformed). Coverage does not change the
 *  exit status: an entry without a case is a gap to fill, not a failure.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "policy_cases.h"

static bool format_named(const char *name, cv_cases_format_t *format)
{
    static const char *const names[] = {"text", "json", "junit"};
    for (int i = 0; i < 3; i++)
        if (strcmp(name, names[i]) == 0) {
            *format = (cv_cases_format_t)i;
            return true;
        }
    return false;
}

int cmd_policy_test(int argc, char **argv)
{
    bool missing = false;
    const char *data_dir = cli_take_option(&argc, argv, "--data", &missing);
    const char *format_name = cli_take_option(&argc, argv, "--format", &missing);
    bool verbose = cli_take_flag(&argc, argv, "--verbose") || cli_take_flag(&argc, argv, "-v");
    bool coverage = cli_take_flag(&argc, argv, "--coverage");
    cv_cases_format_t format = CV_CASES_TEXT;
    if (argc != 3 || missing || (format_name && !format_named(format_name, &format)))
        return cli_error(CLI_USAGE, "usage: caveat policy test FILE CASES.yaml [--data DIR] "
                                    "[--verbose] [--coverage] [--format text|json|junit]");
    cv_policy_t *policy = cli_load_policy(argv[1], data_dir);
    if (!policy)
        return CLI_USAGE;
    size_t len;
    char *text = cv_read_file(argv[2], &len);
    int status = CLI_USAGE;
    if (!text) {
        cli_error(CLI_USAGE, "%s: %s", argv[2], strerror(errno));
    } else {
        cv_cases_options_t options = {.out = stdout,
                                      .err = stderr,
                                      .verbose = verbose,
                                      .format = format,
                                      .coverage = coverage};
        status = cv_cases_run(policy, text, len, argv[2], &options);
    }
    free(text);
    cv_policy_destroy(&policy);
    return status;
}
