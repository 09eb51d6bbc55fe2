/*  caveat: the command line of the caveat broker. Thin: each subcommand is
 *  a function in its own file over the libraries. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cv_alloc.h"

static const char usage[] =
    "usage: caveat COMMAND ...\n"
    "  keygen NAME                          write NAME.cert and NAME.cert_secret\n"
    "  policy check FILE [--strict] [--signers SIGNERS]\n"
    "            every error, then warnings (an entry that only denies, a shadowed entry,\n"
    "            a restriction that never applies, reversed levels); --strict: warnings\n"
    "            fail; --signers: the signature first, by one of SIGNERS\n"
    "  policy explain FILE --report R --to AGENCY [--data DIR] [--approve WHO]\n"
    "  policy test FILE CASES.yaml [--data DIR] [--verbose] [--coverage] [--format F]\n"
    "            run the cases; --coverage: the entries and restrictions no case\n"
    "            exercises; --format text (default), json (one object) or junit (XML for CI)\n"
    "  policy graph FILE                    Graphviz DOT of who may receive what\n"
    "  policy diff OLD NEW                  what a reviewer must approve, section by section,\n"
    "            then 'N changes: ...'; exit 0 when nothing differs, 1 when anything does,\n"
    "            2 for bad input; warns when the version was not raised\n"
    "  policy fmt FILE [--check | -i]       the canonical layout, comments kept, on stdout;\n"
    "            --check: exit 1 if FILE is not formatted; -i/--write: rewrite FILE\n"
    "  policy views FILE --report R [--data DIR] [--format text|json]\n"
    "            every agency's view, side by side ('*': through a screening feed, not a\n"
    "            rule); json: one object, each agency's view as explain gives it\n"
    "  policy sign FILE --key ADMIN.cert_secret      write FILE.minisig, a signature\n"
    "  policy signer-key --key ADMIN.cert_secret [--name NAME]   the signers-file line\n"
    "  publish   --broker EP --server-key BROKER.cert --cert AGENCY.cert_secret [FILE|-]\n"
    "            [--timeout S]                publish JSON reports (one, or JSON lines)\n"
    "  approve REPORT_ID --to AGENCY_OR_TYPE --broker EP --server-key BROKER.cert\n"
    "            --cert AGENCY.cert_secret [--timeout S]   release your own report that its\n"
    "            handling code holds for your approval (code 5) to an agency, or to every\n"
    "            agency of a type; prints each agency it now goes to\n"
    "  subscribe --broker EP --server-key BROKER.cert --cert AGENCY.cert_secret\n"
    "            [--feed NAME] [--count N] [--timeout S]   print deliveries (reports, and\n"
    "            feedback on this agency's reports) as JSON lines\n"
    "            [--receipts DIR]   and write a receipt of each delivery, checked against\n"
    "            the delivery received (agency, queue, seq, report, view), as\n"
    "            DIR/ID.SEQ.tlog-proof\n"
    "            [--audit-key VERIFIER-KEY]   and check each receipt's proof with the\n"
    "            broker's audit key (caveat audit key DIR), as audit receipt does\n"
    "  feedback REPORT_ID --value useful|not_useful|action_taken|seen [--text T]\n"
    "            [--originator AGENCY] --broker EP --server-key BROKER.cert\n"
    "            --cert AGENCY.cert_secret [--timeout S]   feedback on a report received,\n"
    "            for its originator alone\n"
    "  admin stats|sessions|reload|quarantined|purge [--dry-run [--at TIME]] [--trust-clock]|\n"
    "        backup DIR|review REPORT_ID (--retain-until TIME|--dispose) --reason TEXT\n"
    "        [--originator AGENCY]\n"
    "            --broker EP --server-key BROKER.cert --cert ADMIN.cert_secret [--timeout S]\n"
    "            (--timeout: seconds to wait for the answer, 10 by default)\n"
    "  received LABEL=FILE...               subscribe's output, side by side per report\n"
    "  audit key DIR                        the verifier key of DIR's audit log\n"
    "  audit verify DIR [--key VERIFIER-KEY] [--checkpoint FILE]\n"
    "            every leaf and checkpoint of DIR's audit log checked; exit 1 naming the\n"
    "            first that is wrong; --key: the verifier key (default: DIR's own key's);\n"
    "            --checkpoint: one kept from an earlier look, which the log must still hold\n"
    "  audit prove DIR (--index N | --report ID [--to AGENCY]) [--checkpoint SIZE]\n"
    "            c2sp.org/tlog-proof@v1 of leaf N, or of the leaf that accepted report ID\n"
    "            (and decided it for AGENCY): its inclusion proof in the latest\n"
    "            checkpoint (or the one of SIZE leaves), and that checkpoint\n"
    "  audit trace DIR REPORT_ID            every leaf that names the report, as INDEX JSON\n"
    "  audit consistency DIR OLD NEW        the consistency proof between two checkpoints\n"
    "  audit checkpoint DIR [--size N]      a signed checkpoint (default: the last)\n"
    "  audit sample DIR --count N [--since DATE] [--category C] [--seed SIZE]\n"
    "            [--key VERIFIER-KEY] [--format text|json]\n"
    "            N accepted reports drawn at random, reproducibly, from the leaves the\n"
    "            checkpoint of SIZE leaves (default: the last) covers, each with who was\n"
    "            given which fields under which rule\n"
    "  audit summary DIR [--since DATE] [--svg FILE] [--format text|json]\n"
    "            reports shared per category and recipient organisation; --svg: also\n"
    "            as a bar chart\n"
    "  audit receipt FILE --key VERIFIER-KEY\n"
    "            a receipt (subscribe --receipts) checked without the log: signed by the\n"
    "            key, its leaf in the checkpoint; prints the leaf\n"
    "  help [COMMAND]                       this, or one command's part of it\n"
    "  --version                            caveat's version\n";

/*  The lines of usage about command: its own and those indented under it. */
static void print_usage_of(const char *command, FILE *out)
{
    size_t len = strlen(command);
    bool in = false;
    for (const char *line = strchr(usage, '\n') + 1; *line;) {
        const char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) + 1 : strlen(line);
        if (strncmp(line, "  ", 2) == 0 && line[2] != ' ')
            in = strncmp(line + 2, command, len) == 0 && (line[2 + len] == ' ');
        if (in)
            fwrite(line, 1, n, out);
        line += n;
    }
}

static bool is_command(const char *name)
{
    static const char *const commands[] = {"keygen",   "policy", "publish",  "approve", "subscribe",
                                           "feedback", "admin",  "received", "audit",   NULL};
    for (int i = 0; commands[i]; i++)
        if (strcmp(name, commands[i]) == 0)
            return true;
    return false;
}

/*  "caveat COMMAND ... --help" and "caveat help COMMAND": the command's
 *  usage on stdout, nothing else done (no key written for a NAME of
 *  "--help"). */
static bool asks_for_help(int argc, char **argv)
{
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return true;
    return false;
}

int main(int argc, char **argv)
{
    cv_keep_freed_memory(); /* subscribe receives frames of up to 1 MB */
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        (strcmp(argv[1], "help") == 0 &&
         (argc == 2 || strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0))) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_USAGE : CLI_OK;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("caveat %s\n", CAVEAT_VERSION);
        return CLI_OK;
    }
    const char *about = strcmp(argv[1], "help") == 0 ? argv[2] : argv[1];
    if (is_command(about) && (about != argv[1] || asks_for_help(argc, argv))) {
        print_usage_of(about, stdout);
        return CLI_OK;
    }
    if (about != argv[1])
        return cli_error(CLI_USAGE, "help: no command '%s' (caveat help)", about);
    if (strcmp(argv[1], "keygen") == 0)
        return cmd_keygen(argc - 1, argv + 1);
    if (strcmp(argv[1], "policy") == 0)
        return cmd_policy(argc - 1, argv + 1);
    if (strcmp(argv[1], "publish") == 0)
        return cmd_publish(argc - 1, argv + 1);
    if (strcmp(argv[1], "approve") == 0)
        return cmd_approve(argc - 1, argv + 1);
    if (strcmp(argv[1], "subscribe") == 0)
        return cmd_subscribe(argc - 1, argv + 1);
    if (strcmp(argv[1], "feedback") == 0)
        return cmd_feedback(argc - 1, argv + 1);
    if (strcmp(argv[1], "admin") == 0)
        return cmd_admin(argc - 1, argv + 1);
    if (strcmp(argv[1], "received") == 0)
        return cmd_received(argc - 1, argv + 1);
    if (strcmp(argv[1], "audit") == 0)
        return cmd_audit(argc - 1, argv + 1);
    return cli_error(CLI_USAGE, "unknown command '%s' (caveat --help)", argv[1]);
}
