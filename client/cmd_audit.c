/*  caveat audit key|verify|prove|consistency|checkpoint|trace (and sample,
 *  summary: cmd_audit_sample.c, cmd_audit_summary.c): the broker's
 *  audit log (audit/cv_audit.h) read from its data directory, in a process
 *  of its own: the store is opened read-only, and nothing is written. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "audit_leaves.h"
#include "cli.h"
#include "cv_audit.h"

static const char usage[] =
    "usage: caveat audit key DIR | verify DIR [--key VERIFIER-KEY] [--checkpoint FILE] |"
    " prove DIR (--index N | --report ID [--to AGENCY]) [--checkpoint SIZE] |"
    " consistency DIR OLD NEW | checkpoint DIR [--size N] | trace DIR REPORT_ID |"
    " sample DIR --count N [--since DATE] [--category C] [--seed SIZE] [--key VERIFIER-KEY]"
    " [--format text|json] |"
    " summary DIR [--since DATE] [--svg FILE] [--format text|json] |"
    " receipt FILE --key VERIFIER-KEY";

static int audit_key(int argc, char **argv)
{
    if (argc != 2)
        return cli_error(CLI_USAGE, "usage: caveat audit key DIR");
    cv_note_verifier_t verifier;
    if (!audit_load_verifier(argv[1], NULL, &verifier))
        return CLI_USAGE;
    char text[CV_VERIFIER_KEY_MAX];
    cv_note_verifier_text(&verifier, text);
    printf("%s\n", text);
    return CLI_OK;
}

static void print_summary(const cv_audit_summary_t *summary)
{
    char root[sodium_base64_ENCODED_LEN(CV_HASH_BYTES, sodium_base64_VARIANT_ORIGINAL)];
    sodium_bin2base64(root, sizeof root, summary->root.bytes, CV_HASH_BYTES,
                      sodium_base64_VARIANT_ORIGINAL);
    printf("audit log good: %" PRIu64 " leaves, root %s; %" PRIu64 " checkpoints", summary->leaves,
           root, summary->checkpoints);
    if (summary->checkpoints)
        printf(", the last of %s at size %" PRIu64, summary->last.origin, summary->checkpointed);
    if (summary->leaves > summary->checkpointed)
        printf("; %" PRIu64 " leaves not yet checkpointed",
               summary->leaves - summary->checkpointed);
    printf("\n");
}

/*  A checkpoint the reviewer kept (`caveat audit checkpoint` at an
 *  earlier look), its signature checked by verifier. */
static bool read_kept(const char *path, const cv_note_verifier_t *verifier, cv_checkpoint_t *kept)
{
    cv_error_t err = {0};
    size_t len = 0;
    char *note = cv_read_regular_file(path, 64 * 1024, &len, NULL, &err);
    bool ok = note && cv_checkpoint_open(note, len, verifier, kept, &err);
    free(note);
    if (!ok)
        cli_error(CLI_USAGE, "%s: %s", path, err.msg);
    return ok;
}

static int audit_verify(int argc, char **argv)
{
    bool missing = false;
    const char *key = cli_take_option(&argc, argv, "--key", &missing);
    const char *kept_path = cli_take_option(&argc, argv, "--checkpoint", &missing);
    if (argc != 2 || missing)
        return cli_error(CLI_USAGE,
                         "usage: caveat audit verify DIR [--key VERIFIER-KEY] [--checkpoint FILE]");
    cv_note_verifier_t verifier;
    cv_checkpoint_t kept;
    if (!audit_load_verifier(argv[1], key, &verifier) ||
        (kept_path && !read_kept(kept_path, &verifier, &kept)))
        return CLI_USAGE;
    cv_error_t err = {0};
    sqlite3 *db = cv_audit_open_readonly(argv[1], &err);
    if (!db)
        return cli_error(CLI_USAGE, "%s", err.msg);
    cv_audit_summary_t summary;
    bool good = cv_audit_verify_kept(db, &verifier, kept_path ? &kept : NULL, &summary, &err);
    sqlite3_close(db);
    if (!good)
        return cli_error(CLI_FAILED, "%s: %s", argv[1], err.msg);
    print_summary(&summary);
    if (kept_path)
        printf("held to the kept checkpoint of %" PRIu64 " leaves, root as kept\n", kept.size);
    if (!key) /* the summary's line stays as it is, for whoever reads it */
        printf("note: checked against DIR/audit.key, which whoever could edit the store could "
               "replace; --key KEY (from `caveat audit key`, kept elsewhere) checks against "
               "yours\n");
    if (!kept_path) /* the signing key is in DIR: its holder can sign any log */
        printf("note: held to no checkpoint you kept: whoever holds DIR/audit.key, the broker's "
               "signing key, could have written and signed another log; keep one (`caveat audit "
               "checkpoint DIR > kept.txt`) and give it next time (--checkpoint kept.txt)\n");
    return CLI_OK;
}

/*  Runs make on DIR's store opened read-only and prints what it gives. */
static int print_from_store(const char *dir,
                            char *(*make)(sqlite3 *, const uint64_t *, cv_error_t *),
                            const uint64_t *args)
{
    cv_error_t err = {0};
    sqlite3 *db = cv_audit_open_readonly(dir, &err);
    if (!db)
        return cli_error(CLI_USAGE, "%s", err.msg);
    char *text = make(db, args, &err);
    sqlite3_close(db);
    if (!text)
        return cli_error(CLI_FAILED, "%s: %s", dir, err.msg);
    /* a checkpoint or proof is printed as it is, to be kept as a file: one
     * an edited store made with control characters is not printed at all */
    bool readable = cv_text_readable(text, strlen(text), "\n");
    if (readable)
        fputs(text, stdout);
    free(text);
    return readable
               ? CLI_OK
               : cli_error(CLI_FAILED,
                           "%s: the stored checkpoint holds control or bidirectional characters",
                           dir);
}

static char *make_proof(sqlite3 *db, const uint64_t *args, cv_error_t *err)
{
    return cv_audit_prove(db, args[0], args[1], NULL, 0, err);
}

static char *make_consistency(sqlite3 *db, const uint64_t *args, cv_error_t *err)
{
    return cv_audit_consistency(db, args[0], args[1], err);
}

static char *make_checkpoint(sqlite3 *db, const uint64_t *args, cv_error_t *err)
{
    return cv_audit_checkpoint(db, args[0], err);
}

/*  The "accepted" leaves found: where the first is, and how many. */
typedef struct {
    uint64_t index;
    int accepted;
} accepted_t;

static void on_accepted(void *arg, uint64_t index, const void *data, size_t len)
{
    static const char prefix[] = "{\"event\":\"accepted\",";
    accepted_t *found = arg;
    if (len < sizeof prefix - 1 || memcmp(data, prefix, sizeof prefix - 1) != 0)
        return;
    if (found->accepted++ == 0)
        found->index = index;
}

/*  The index of the leaf that accepted report_id (decided for agency,
 *  when given): CLI_OK, or an error said. */
static int find_accepted(const char *dir, const char *report_id, const char *agency,
                         uint64_t *index)
{
    cv_error_t err = {0};
    sqlite3 *db = cv_audit_open_readonly(dir, &err);
    if (!db)
        return cli_error(CLI_USAGE, "%s", err.msg);
    accepted_t found = {0, 0};
    int n = cv_audit_find_report(db, report_id, agency, on_accepted, &found, &err);
    sqlite3_close(db);
    if (n < 0)
        return cli_error(CLI_FAILED, "%s: %s", dir, err.msg);
    if (found.accepted == 0)
        return cli_error(CLI_FAILED, "%s: no report %s accepted%s%s in the audit log", dir,
                         report_id, agency ? " and decided for " : "", agency ? agency : "");
    if (found.accepted > 1)
        return cli_error(CLI_FAILED,
                         "%s: %d reports of different originators have the id %s: "
                         "see caveat audit trace, and prove one with --index",
                         dir, found.accepted, report_id);
    *index = found.index;
    return CLI_OK;
}

static int audit_prove(int argc, char **argv)
{
    bool missing = false;
    const char *index = cli_take_option(&argc, argv, "--index", &missing);
    const char *report = cli_take_option(&argc, argv, "--report", &missing);
    const char *to = cli_take_option(&argc, argv, "--to", &missing);
    const char *size = cli_take_option(&argc, argv, "--checkpoint", &missing);
    uint64_t args[2] = {0, 0};
    if (argc != 2 || missing || !index == !report || (to && !report))
        return cli_error(CLI_USAGE, "usage: caveat audit prove DIR (--index N | --report ID "
                                    "[--to AGENCY]) [--checkpoint SIZE]");
    if (index && !audit_parse_count(index, &args[0]))
        return cli_error(CLI_USAGE, "--index %s: not a leaf index", index);
    int found = report ? find_accepted(argv[1], report, to, &args[0]) : CLI_OK;
    if (found != CLI_OK)
        return found;
    if (size && (!audit_parse_count(size, &args[1]) || args[1] == 0))
        return cli_error(CLI_USAGE, "--checkpoint %s: not a tree size", size);
    return print_from_store(argv[1], make_proof, args);
}

/*  A leaf as the broker writes it, compact JSON, is written as it is; the
 *  bytes of an edited one cannot write to the terminal or start a line. */
static void print_leaf(void *arg, uint64_t index, const void *data, size_t len)
{
    (void)arg;
    printf("%" PRIu64 " ", index);
    cv_text_write(stdout, data, len);
    putchar('\n');
}

/*  Every leaf that names the report, in order, as INDEX JSON lines. */
static int audit_trace(int argc, char **argv)
{
    if (argc != 3)
        return cli_error(CLI_USAGE, "usage: caveat audit trace DIR REPORT_ID");
    cv_error_t err = {0};
    sqlite3 *db = cv_audit_open_readonly(argv[1], &err);
    if (!db)
        return cli_error(CLI_USAGE, "%s", err.msg);
    int n = cv_audit_find_report(db, argv[2], NULL, print_leaf, NULL, &err);
    sqlite3_close(db);
    if (n < 0)
        return cli_error(CLI_FAILED, "%s: %s", argv[1], err.msg);
    if (n == 0)
        return cli_error(CLI_FAILED, "%s: no leaf names report %s", argv[1], argv[2]);
    return CLI_OK;
}

static int audit_consistency(int argc, char **argv)
{
    uint64_t args[2];
    if (argc != 4)
        return cli_error(CLI_USAGE, "usage: caveat audit consistency DIR OLD NEW");
    for (int i = 0; i < 2; i++)
        if (!audit_parse_count(argv[2 + i], &args[i]))
            return cli_error(CLI_USAGE, "%s: not a tree size", argv[2 + i]);
    return print_from_store(argv[1], make_consistency, args);
}

static int audit_checkpoint(int argc, char **argv)
{
    bool missing = false;
    const char *size = cli_take_option(&argc, argv, "--size", &missing);
    uint64_t args[1] = {0};
    if (argc != 2 || missing)
        return cli_error(CLI_USAGE, "usage: caveat audit checkpoint DIR [--size N]");
    if (size && (!audit_parse_count(size, &args[0]) || args[0] == 0))
        return cli_error(CLI_USAGE, "--size %s: not a tree size", size);
    return print_from_store(argv[1], make_checkpoint, args);
}

int cmd_audit(int argc, char **argv)
{
    if (argc < 2)
        return cli_error(CLI_USAGE, "%s", usage);
    if (sodium_init() < 0)
        return cli_error(CLI_FAILED, "libsodium cannot start");
    const char *verb = argv[1];
    if (strcmp(verb, "key") == 0)
        return audit_key(argc - 1, argv + 1);
    if (strcmp(verb, "verify") == 0)
        return audit_verify(argc - 1, argv + 1);
    if (strcmp(verb, "prove") == 0)
        return audit_prove(argc - 1, argv + 1);
    if (strcmp(verb, "consistency") == 0)
        return audit_consistency(argc - 1, argv + 1);
    if (strcmp(verb, "checkpoint") == 0)
        return audit_checkpoint(argc - 1, argv + 1);
    if (strcmp(verb, "trace") == 0)
        return audit_trace(argc - 1, argv + 1);
    if (strcmp(verb, "sample") == 0)
        return cmd_audit_sample(argc - 1, argv + 1);
    if (strcmp(verb, "summary") == 0)
        return cmd_audit_summary(argc - 1, argv + 1);
    if (strcmp(verb, "receipt") == 0)
        return cmd_audit_receipt(argc - 1, argv + 1);
    return cli_error(CLI_USAGE, "unknown audit command '%s' (%s)", verb, usage);
}
