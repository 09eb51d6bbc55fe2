/*  caveat feedback REPORT_ID --value V [--text T]: feedback on a report
 *  delivered to this agency, for its originator alone (docs/protocol.md,
 *  "Feedback"). Exits 0 once the broker has stored it. */
#include <stdio.h>

#include "cli.h"

static const char usage[] =
    "usage: caveat feedback REPORT_ID --value useful|not_useful|action_taken|seen [--text T] "
    "[--originator AGENCY] --broker EP --server-key BROKER.cert --cert AGENCY.cert_secret "
    "[--timeout S]";

#define DEFAULT_TIMEOUT_MS 10000

int cmd_feedback(int argc, char **argv)
{
    bool missing = false;
    const char *value = cli_take_option(&argc, argv, "--value", &missing);
    const char *text = cli_take_option(&argc, argv, "--text", &missing);
    const char *originator = cli_take_option(&argc, argv, "--originator", &missing);
    cv_client_config_t config = {.publish_only = true};
    int timeout_ms;
    int status = cli_broker_options(&argc, argv, usage, &config, &timeout_ms);
    if (status != CLI_OK)
        return status;
    if (missing || !value || argc != 2)
        return cli_error(CLI_USAGE, "%s", usage);
    timeout_ms = timeout_ms > 0 ? timeout_ms : DEFAULT_TIMEOUT_MS;
    config.timeout_ms = timeout_ms;
    cv_error_t err;
    cv_client_t *client = cv_client_new(&config, &err);
    if (!client)
        return cli_error(CLI_FAILED, "%s", err.msg);
    bool stored = cv_client_feedback(client, argv[1], originator, value, text, timeout_ms, &err);
    cv_client_destroy(&client);
    if (!stored)
        return cli_error(err.code == CV_ERR_BAD_INPUT ? CLI_USAGE : CLI_FAILED, "%s", err.msg);
    printf("feedback on %s stored for its originator\n", argv[1]);
    return CLI_OK;
}
