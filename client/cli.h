/*  cli.h: what the `caveat` command's files share. Each subcommand lives
 *  in its own file and is a function from argv to an exit status. */
#ifndef CV_CLI_H
#define CV_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include "caveat.h"
#include "cv_proto.h" /* internals: the schema, JSON, the wire protocol */
#include "cv_policy.h"

/*  Exit statuses: 0 success, 1 a refusal or failed check, 2 bad usage or
 *  bad input. */
enum { CLI_OK = 0, CLI_FAILED = 1, CLI_USAGE = 2 };

/*  Prints "caveat: ..." on stderr, one line, its control characters
 *  escaped (cv_text_write); returns status for "return cli_error()". */
int cli_error(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*  Finds "--name VALUE" in argv, removing both; NULL when absent. Returns
 *  "" and sets *missing when the flag has no value. */
const char *cli_take_option(int *argc, char **argv, const char *name, bool *missing);
/*  Finds and removes a "--name" flag. */
bool cli_take_flag(int *argc, char **argv, const char *name);

/*  Loads a policy for the CLI: with --data DIR the broker's pseudonym key
 *  from DIR, else the repeatable key derived from the protocol name. Prints
 *  the error itself. */
cv_policy_t *cli_load_policy(const char *path, const char *data_dir);

/*  Reads, parses and validates a report (a JSON file, "-" for stdin)
 *  against the policy. Prints the error itself. */
Caveat__Report *cli_load_report(const cv_policy_t *policy, const char *path);

/*  One decision as `policy explain` prints it: {"delivered", "feed",
 *  "rules", "report" (view, when delivered), "fields", "reasons", "told"};
 *  `policy views --format json` prints one per agency. */
void cli_explanation(cv_json_writer_t *out, const cv_decision_t *decision,
                     const Caveat__Report *view);

int cmd_keygen(int argc, char **argv);
int cmd_policy(int argc, char **argv);
int cmd_policy_test(int argc, char **argv);
int cmd_policy_views(int argc, char **argv);
int cmd_policy_sign(int argc, char **argv);
int cmd_policy_signer_key(int argc, char **argv);
int cmd_publish(int argc, char **argv);
int cmd_approve(int argc, char **argv);
int cmd_subscribe(int argc, char **argv);
int cmd_feedback(int argc, char **argv);
int cmd_admin(int argc, char **argv);
int cmd_received(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_audit_sample(int argc, char **argv);
int cmd_audit_summary(int argc, char **argv);
int cmd_audit_receipt(int argc, char **argv);

/*  For the commands that talk to a broker (publish, subscribe, admin):
 *  takes --broker EP, --server-key FILE, --cert FILE and --timeout S from
 *  argv into config and *timeout_ms (-1 when --timeout is absent), checks
 *  the certificate files, and quiets czmq's own signal handling and logging
 *  (Ctrl-C ends the command; stdout carries only output). Prints the error
 *  itself and returns CLI_OK or the exit status. */
int cli_broker_options(int *argc, char **argv, const char *usage, cv_client_config_t *config,
                       int *timeout_ms);

#endif
