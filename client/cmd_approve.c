/*  caveat approve: the originator's release of one of its own reports
 *  whose handling code holds it for approval (handling code 5 in the
 *  examples), to an agency or every agency of a type. Waits until the
 *  broker has stored the approval and routed the report, then prints each
 *  agency the approval released it to, one a line (none: every agency it
 *  names had it already, or the policy releases it to none of them). A
 *  refusal is one line on stderr and exit status 1. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char usage[] = "usage: caveat approve REPORT_ID --to AGENCY_OR_TYPE --broker EP "
                            "--server-key BROKER.cert --cert AGENCY.cert_secret [--timeout S]";

static int approve(const cv_client_config_t *config, const char *report_id, const char *to)
{
    cv_error_t err;
    cv_client_t *client = cv_client_new(config, &err);
    if (!client)
        return cli_error(CLI_FAILED, "%s", err.msg);
    cv_approval_result_t result;
    int refused = cv_client_approve(client, report_id, to, &result, config->timeout_ms, &err);
    cv_client_destroy(&client);
    int status = CLI_OK;
    if (refused < 0)
        status = cli_error(CLI_FAILED, "%s", err.msg);
    else if (refused)
        status = cli_error(CLI_FAILED, "approval of %s: not stored: %s", report_id,
                           *result.reason ? result.reason : cv_status_name(result.status));
    for (size_t i = 0; refused == 0 && i < result.n_recipients; i++)
        printf("%s\n", result.recipients[i]);
    cv_approval_result_clear(&result);
    if (status == CLI_OK && (fflush(stdout) != 0 || ferror(stdout)))
        status = cli_error(CLI_FAILED, "stdout: write error");
    return status;
}

int cmd_approve(int argc, char **argv)
{
    cv_client_config_t config = {.publish_only = true}; /* leaves the agency's subscriber be */
    bool missing = false;
    const char *to = cli_take_option(&argc, argv, "--to", &missing);
    int timeout_ms;
    int status = cli_broker_options(&argc, argv, usage, &config, &timeout_ms);
    if (status != CLI_OK)
        return status;
    if (missing || !to || !*to || argc != 2 || argv[1][0] == '-' || !*argv[1])
        return cli_error(CLI_USAGE, "%s", usage);
    config.timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;
    return approve(&config, argv[1], to);
}
