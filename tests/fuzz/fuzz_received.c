/*  fuzz_received: `caveat received`'s reader (client/received.h) on any
 *  bytes, as a subscriber's file may hold them: its lines carry other
 *  agencies' reports, and the file may have been edited. The input's lines
 *  (up to 64) are read in turn, each under the label "a" or "b" (by the
 *  line's parity, as two files' lines would be), and the tables checked:
 *    - a line is accepted or refused with its reason, never half taken:
 *      the views read are the lines accepted (feedback lines, passed
 *      over, are not views);
 *    - every table's views are of its report: each names the table's
 *      originator, and no two tables are the same (id, originator);
 *    - every view packs to protobuf and unpacks again: what the tables
 *      print is a report of the schema. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "received.h"

#define MAX_LINES 64

/*  Whether line is one `caveat subscribe` writes for feedback: such a line
 *  is accepted and makes no view. A guess by its text, checked only one
 *  way: a line taken as a view never looks like one. */
static bool looks_like_feedback(const char *line, size_t len)
{
    static const char mark[] = "\"feedback\"";
    return memmem(line, len, mark, sizeof mark - 1) != NULL;
}

static void check_view(const Caveat__Report *view)
{
    size_t size = caveat__report__get_packed_size(view);
    uint8_t *bytes = malloc(size ? size : 1);
    if (!bytes)
        fuzz_fail("out of memory");
    caveat__report__pack(view, bytes);
    Caveat__Report *back = caveat__report__unpack(NULL, size, bytes);
    if (!back)
        fuzz_fail("a view read does not unpack after packing (%zu bytes)", size);
    caveat__report__free_unpacked(back, NULL);
    free(bytes);
}

static void check_tables(const received_t *all, int views)
{
    int seen = 0;
    for (int i = 0; i < received_count(all); i++) {
        const received_report_t *r = received_at(all, i);
        if (r->n < 1)
            fuzz_fail("table %d has no view", i);
        for (int v = 0; v < r->n; v++) {
            const char *originator = r->views[v].view->originator;
            if (strcmp(originator ? originator : "", r->originator) != 0)
                fuzz_fail("a view of originator '%s' in the table of '%s'",
                          originator ? originator : "", r->originator);
            check_view(r->views[v].view);
        }
        for (int j = 0; j < i; j++) {
            const received_report_t *other = received_at(all, j);
            if (strcmp(other->report_id, r->report_id) == 0 &&
                strcmp(other->originator, r->originator) == 0)
                fuzz_fail("two tables of report '%s' from '%s'", r->report_id, r->originator);
        }
        seen += r->n;
    }
    if (seen != views)
        fuzz_fail("%d views in the tables, %d lines taken as views", seen, views);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    received_t *all = received_new();
    const char *text = (const char *)data, *end = text + size;
    int views = 0, lines = 0;
    for (const char *line = text; line < end && lines < MAX_LINES; lines++) {
        const char *stop = memchr(line, '\n', (size_t)(end - line));
        size_t len = (size_t)((stop ? stop : end) - line);
        cv_error_t err = {0};
        int before = 0;
        for (int i = 0; i < received_count(all); i++)
            before += received_at(all, i)->n;
        bool ok = received_read_line(all, lines % 2 ? "b" : "a", line, len, "lines", &err);
        int after = 0;
        for (int i = 0; i < received_count(all); i++)
            after += received_at(all, i)->n;
        if (!ok && !err.msg[0])
            fuzz_fail("line %d refused without a reason", lines);
        if (!ok && after != before)
            fuzz_fail("line %d refused, yet a view was added", lines);
        if (ok && after != before && after != before + 1)
            fuzz_fail("line %d made %d views", lines, after - before);
        if (ok && after == before && !looks_like_feedback(line, len))
            fuzz_fail("line %d taken, as neither a view nor feedback", lines);
        views += after - before;
        line += len + 1;
    }
    check_tables(all, views);
    received_destroy(&all);
    return 0;
}
