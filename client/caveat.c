/*  caveat: the command line of the caveat broker. Thin: each subcommand is
 *  a function in its own file over the libraries. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "usage: caveat COMMAND ...\n"
    "  keygen NAME                          write NAME.cert and NAME.cert_secret\n"
    "  policy check FILE                    validate a policy\n"
    "  policy explain FILE --report R --to AGENCY [--data DIR] [--approve WHO]\n"
    "  policy test FILE CASES.yaml [--data DIR]\n"
    "  policy graph FILE                    Graphviz DOT of who may receive what\n"
    "  policy diff OLD NEW                  what a reviewer must approve\n"
    "  policy views FILE --report R [--data DIR]   every agency's view, side by side\n"
    "  publish   --broker EP --server-key BROKER.cert --cert AGENCY.cert_secret [FILE|-]\n"
    "            [--timeout S]                publish JSON reports (one, or JSON lines)\n"
    "  subscribe --broker EP --server-key BROKER.cert --cert AGENCY.cert_secret\n"
    "            [--feed NAME] [--count N] [--timeout S]   print deliveries as JSON lines\n"
    "  admin stats|reload|purge [--dry-run]|backup DIR\n"
    "            --broker EP --server-key BROKER.cert --cert ADMIN.cert_secret\n"
    "  received LABEL=FILE...               subscribe's output, side by side per report\n";

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_USAGE : CLI_OK;
    }
    if (strcmp(argv[1], "keygen") == 0)
        return cmd_keygen(argc - 1, argv + 1);
    if (strcmp(argv[1], "policy") == 0)
        return cmd_policy(argc - 1, argv + 1);
    if (strcmp(argv[1], "publish") == 0)
        return cmd_publish(argc - 1, argv + 1);
    if (strcmp(argv[1], "subscribe") == 0)
        return cmd_subscribe(argc - 1, argv + 1);
    if (strcmp(argv[1], "admin") == 0)
        return cmd_admin(argc - 1, argv + 1);
    if (strcmp(argv[1], "received") == 0)
        return cmd_received(argc - 1, argv + 1);
    return cli_error(CLI_USAGE, "unknown command '%s' (caveat --help)", argv[1]);
}
