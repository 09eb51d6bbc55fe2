/*  caveat audit summary: how many reports were shared, per category and
 *  recipient organisation, as a table and as an SVG bar chart for an
 *  oversight meeting.
 *
 *  The counting and the forms are audit_tally.h's.
 */
#include <inttypes.h>
#include <libfyaml.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_leaves.h"
#include "audit_tally.h"
#include "cli.h"

static const char usage[] =
    "usage: caveat audit summary DIR [--since DATE] [--svg FILE] [--format text|json]";

/*  The reports approvals name, before counting (audit_tally.h). */
static bool expect_leaf(void *arg, uint64_t index, const void *data, size_t len)
{
    (void)index;
    audit_tally_expect(arg, data, len);
    return true;
}

/*  Each leaf into the tally. */
static bool count_leaf(void *arg, uint64_t index, const void *data, size_t len)
{
    (void)index;
    audit_tally_add(arg, data, len);
    return true;
}

static bool write_svg(const char *path, audit_tally_t *t, const char *since)
{
    FILE *out = fopen(path, "w");
    if (!out)
        return false;
    bool written = audit_tally_svg(t, out, since);
    return fclose(out) == 0 && written;
}

static int summarise(sqlite3 *db, const char *dir, audit_tally_t *t, const char *since,
                     const char *svg, bool json)
{
    cv_error_t err = {0};
    /* twice: an approval comes after the accepted leaf that says what the
     * report's recipients had already */
    if (!audit_leaves_each(db, UINT64_MAX, expect_leaf, t, &err) ||
        !audit_leaves_each(db, UINT64_MAX, count_leaf, t, &err))
        return cli_error(CLI_FAILED, "%s: %s", dir, err.msg);
    cv_audit_end_read(db);
    if (svg && !write_svg(svg, t, since))
        return cli_error(CLI_USAGE, "%s: cannot write: %m", svg);
    if (json)
        audit_tally_json(t, stdout);
    else
        audit_tally_print(t, stdout, since);
    return CLI_OK;
}

int cmd_audit_summary(int argc, char **argv)
{
    bool missing = false;
    const char *since = cli_take_option(&argc, argv, "--since", &missing);
    const char *svg = cli_take_option(&argc, argv, "--svg", &missing);
    const char *format = cli_take_option(&argc, argv, "--format", &missing);
    uint64_t since_ms = 0;
    if (argc != 2 || missing)
        return cli_error(CLI_USAGE, "%s", usage);
    if (since && !audit_parse_since(since, &since_ms))
        return cli_error(CLI_USAGE, "--since %s: not a date (YYYY-MM-DD) or RFC 3339 time", since);
    if (format && strcmp(format, "text") != 0 && strcmp(format, "json") != 0)
        return cli_error(CLI_USAGE, "--format %s: text or json", format);
    cv_error_t err = {0};
    sqlite3 *db = cv_audit_open_readonly(argv[1], &err);
    if (!db)
        return cli_error(CLI_USAGE, "%s", err.msg);
    audit_tally_t *tally = audit_tally_new(since_ms);
    if (!tally)
        abort();
    int status = summarise(db, argv[1], tally, since, svg, format && strcmp(format, "json") == 0);
    sqlite3_close(db);
    audit_tally_destroy(&tally);
    return status;
}
