/*  caveat admin stats|sessions|reload|quarantined|purge|backup|review: an
 *  administrator's request to the broker.
 *  Also the options every broker command shares (cli_broker_options). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <czmq.h>

#include "cli.h"

static const char usage[] =
    "usage: caveat admin stats|sessions|reload|quarantined|purge [--dry-run [--at TIME]] "
    "[--trust-clock]|backup DIR|review REPORT_ID (--retain-until TIME | --dispose) "
    "--reason TEXT [--originator AGENCY] --broker EP "
    "--server-key BROKER.cert --cert ADMIN.cert_secret [--timeout S]";

/*  "--timeout S": seconds, fractions allowed, as milliseconds. */
static bool parse_timeout(const char *text, int *timeout_ms)
{
    double value;
    if (!cv_seconds_parse(text, &value))
        return false;
    *timeout_ms = (int)(value * 1000 + 0.999); /* at least 1 ms */
    return true;
}

/*  czmq catches SIGINT and SIGTERM and logs to stdout by default; a
 *  command line wants Ctrl-C to end it and stdout to carry only output. */
static void quiet_czmq(void)
{
    zsys_init();
    zsys_handler_set(NULL);
    zsys_set_logstream(stderr);
}

int cli_broker_options(int *argc, char **argv, const char *usage_text, cv_client_config_t *config,
                       int *timeout_ms)
{
    bool missing = false;
    config->endpoint = cli_take_option(argc, argv, "--broker", &missing);
    config->server_cert = cli_take_option(argc, argv, "--server-key", &missing);
    config->client_cert = cli_take_option(argc, argv, "--cert", &missing);
    const char *timeout = cli_take_option(argc, argv, "--timeout", &missing);
    if (missing || !config->endpoint || !config->server_cert || !config->client_cert)
        return cli_error(CLI_USAGE, "%s", usage_text);
    *timeout_ms = -1;
    if (timeout && !parse_timeout(timeout, timeout_ms))
        return cli_error(CLI_USAGE, "--timeout %s: not a number of seconds", timeout);
    cv_error_t err;
    if (!cv_client_check_certs(config, &err))
        return cli_error(CLI_USAGE, "%s", err.msg);
    quiet_czmq();
    return CLI_OK;
}

/*  `admin review`'s options as the request's arguments, "name=value"
 *  each, in args (room for 4); how many, or -1 when they are not right. */
typedef struct {
    char text[4][640];
} review_args_t;

static int review_args(int *argc, char **argv, review_args_t *out, const char *args[4])
{
    bool missing = false;
    const char *until = cli_take_option(argc, argv, "--retain-until", &missing);
    const char *reason = cli_take_option(argc, argv, "--reason", &missing);
    const char *originator = cli_take_option(argc, argv, "--originator", &missing);
    bool dispose = cli_take_flag(argc, argv, "--dispose");
    if (missing || *argc != 3 || !reason || dispose == (until != NULL))
        return -1;
    const char *values[][2] = {{"report", argv[2]},
                               {"reason", reason},
                               {until ? "retain-until" : NULL, until},
                               {originator ? "originator" : NULL, originator}};
    int n = 0;
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++)
        if (values[i][0]) {
            snprintf(out->text[n], sizeof out->text[n], "%s=%s", values[i][0], values[i][1]);
            args[n] = out->text[n];
            n++;
        }
    if (dispose)
        args[n++] = "dispose";
    return n;
}

/*  The reply's text as one line, for stderr. */
static void flatten(char *text)
{
    for (char *c = text; *c; c++)
        if (*c == '\n' || *c == '\r' || *c == '\t')
            *c = ' ';
}

int cmd_admin(int argc, char **argv)
{
    cv_client_config_t config = {.publish_only = true}; /* takes no subscriber's queue */
    int timeout_ms;
    int status = cli_broker_options(&argc, argv, usage, &config, &timeout_ms);
    if (status != CLI_OK)
        return status;
    bool dry_run = cli_take_flag(&argc, argv, "--dry-run");
    bool trust_clock = cli_take_flag(&argc, argv, "--trust-clock");
    bool missing = false;
    const char *at = cli_take_option(&argc, argv, "--at", &missing);
    if (missing || (at && !dry_run))
        return cli_error(CLI_USAGE, "--at TIME goes with purge --dry-run");
    char at_arg[96];
    if (argc < 2 || argv[1][0] == '-')
        return cli_error(CLI_USAGE, "%s", usage);
    const char *command = argv[1];
    const char *args[4] = {NULL, NULL, NULL, NULL};
    size_t n_args = 0;
    bool purge = strcmp(command, "purge") == 0;
    review_args_t review;
    if (strcmp(command, "review") == 0) {
        int n = dry_run || trust_clock ? -1 : review_args(&argc, argv, &review, args);
        if (n < 0)
            return cli_error(CLI_USAGE, "%s", usage);
        n_args = (size_t)n;
        argc = 2; /* the report id is taken */
    }
    if (purge && dry_run)
        args[n_args++] = "dry-run";
    if (purge && trust_clock)
        args[n_args++] = "trust-clock";
    if (purge && at) {
        snprintf(at_arg, sizeof at_arg, "at=%s", at);
        args[n_args++] = at_arg;
    }
    if (strcmp(command, "backup") == 0 && argc == 3 && !dry_run && !trust_clock)
        args[n_args++] = argv[2];
    else if ((strcmp(command, "stats") && strcmp(command, "sessions") &&
              strcmp(command, "reload") && !purge && strcmp(command, "quarantined") &&
              strcmp(command, "review")) ||
             argc != 2 || ((dry_run || trust_clock) && !purge))
        return cli_error(CLI_USAGE, "%s", usage);
    if (timeout_ms < 0)
        timeout_ms = 10000;
    config.timeout_ms = timeout_ms;

    cv_error_t err;
    cv_client_t *client = cv_client_new(&config, &err);
    if (!client)
        return cli_error(CLI_FAILED, "%s", err.msg);
    bool ok = false;
    char *text = cv_client_admin_args(client, command, args, n_args, &ok, timeout_ms, &err);
    cv_client_destroy(&client);
    if (!text)
        return cli_error(CLI_FAILED, "%s", err.msg);
    if (ok) {
        size_t len = strlen(text);
        printf("%s%s", text, len && text[len - 1] == '\n' ? "" : "\n");
        status = fflush(stdout) == 0 && !ferror(stdout)
                     ? CLI_OK
                     : cli_error(CLI_FAILED, "stdout: write error");
    } else {
        flatten(text);
        status = cli_error(CLI_FAILED, "%s", *text ? text : "the broker refused the request");
    }
    free(text);
    return status;
}
