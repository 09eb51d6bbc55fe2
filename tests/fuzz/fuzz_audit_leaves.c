/*  fuzz_audit_leaves: what `caveat audit trace`, `sample` and `summary`
 *  make of the leaves they read from a store, which someone may have
 *  edited: any bytes. The input is up to 32 leaves, split at 0x1e (the
 *  ASCII record separator). Each leaf goes through cv_text_write (a trace
 *  line), audit_leaf_print, audit_leaf_print_approval and
 *  audit_leaf_write_json (a sample's text and JSON), and all of them
 *  through one audit_tally, expected then added as the summary does (its
 *  table, JSON and SVG), each written to memory and checked:
 *    - text: nothing a terminal would act on (no control character but
 *      the line ends the form has), and the sample's lines are its own: a
 *      blank line, one "leaf INDEX" line, the rest indented, an approval's
 *      all indented;
 *    - a trace line is the leaf as it is when the leaf is readable text
 *      without a backslash;
 *    - JSON: reads back as a JSON object;
 *    - SVG: UTF-8, every '<' opens one of the chart's own elements, every
 *      '&' one of the five escapes;
 *    - the tally counts no more reports accepted than there are accepted
 *      leaves, nor shared than accepted and approval leaves. */
#include <libfyaml.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_leaf_print.h"
#include "audit_tally.h"
#include "fuzz.h"
#include "leaf_json.h"

#define MAX_LEAVES 32
#define SEPARATOR  0x1e

/*  What a FILE written in memory holds. */
typedef struct {
    FILE *file;
    char *text;
    size_t len;
} memory_t;

static void memory_open(memory_t *m)
{
    m->text = NULL;
    m->len = 0;
    m->file = open_memstream(&m->text, &m->len);
    if (!m->file)
        fuzz_fail("open_memstream: out of memory");
}

static void memory_close(memory_t *m)
{
    if (fclose(m->file) != 0 || !m->text)
        fuzz_fail("a memory stream failed");
}

static void check_readable(const memory_t *m, const char *controls, const char *what)
{
    if (!cv_text_readable(m->text, m->len, controls))
        fuzz_fail("%s: a character a terminal would act on:\n%s", what, m->text);
}

static void check_json(const char *text, const char *what)
{
    struct fy_document *doc = audit_leaf_parse(text, strlen(text));
    if (!doc)
        fuzz_fail("%s: not a JSON object:\n%s", what, text);
    fy_document_destroy(doc);
}

/*  A trace line: the leaf's bytes, safe to print, and unchanged when they
 *  were already. */
static void check_trace(const uint8_t *leaf, size_t len)
{
    memory_t m;
    memory_open(&m);
    cv_text_write(m.file, (const char *)leaf, len);
    memory_close(&m);
    check_readable(&m, "", "a trace line");
    bool plain = cv_text_readable((const char *)leaf, len, "") && !memchr(leaf, '\\', len);
    if (plain && (m.len != len || memcmp(m.text, leaf, len) != 0))
        fuzz_fail("a readable leaf written otherwise than as it is");
    free(m.text);
}

typedef void print_fn(FILE *out, uint64_t index, const char *data, size_t len);

/*  What print writes of the leaf, in m, checked readable. */
static void printed(memory_t *m, print_fn *print, const uint8_t *leaf, size_t len, uint64_t index,
                    const char *what)
{
    memory_open(m);
    print(m->file, index, (const char *)leaf, len);
    memory_close(m);
    check_readable(m, "\n", what);
}

/*  A sample's text: "\nleaf N..." then indented lines only. */
static void check_sample_text(const uint8_t *leaf, size_t len, uint64_t index)
{
    memory_t m;
    printed(&m, audit_leaf_print, leaf, len, index, "a sample's text");
    char head[32];
    int n = snprintf(head, sizeof head, "\nleaf %llu", (unsigned long long)index);
    if (strncmp(m.text, head, (size_t)n) != 0 || m.text[m.len - 1] != '\n')
        fuzz_fail("a sample's text begins or ends otherwise:\n%s", m.text);
    for (const char *line = strchr(m.text + 1, '\n'); line && line[1];
         line = strchr(line + 1, '\n'))
        if (strncmp(line + 1, "  ", 2) != 0)
            fuzz_fail("a sample's text has a line of its leaf's own:\n%s", m.text);
    free(m.text);
}

/*  An approval under its sampled report: lines indented, each ended. */
static void check_approval_text(const uint8_t *leaf, size_t len, uint64_t index)
{
    memory_t m;
    printed(&m, audit_leaf_print_approval, leaf, len, index, "an approval's text");
    if (m.len == 0 || m.text[m.len - 1] != '\n')
        fuzz_fail("an approval's text ends otherwise:\n%s", m.text);
    for (const char *line = m.text; *line; line = strchr(line, '\n') + 1)
        if (strncmp(line, "  ", 2) != 0)
            fuzz_fail("an approval's text has a line of its leaf's own:\n%s", m.text);
    free(m.text);
}

static void check_sample_json(const uint8_t *leaf, size_t len, uint64_t index)
{
    cv_json_writer_t *w = cv_json_writer_new(0);
    audit_leaf_write_json(w, index, (const char *)leaf, len);
    const char *text = cv_json_writer_text(w);
    if (!text)
        fuzz_fail("the JSON writer ran out of memory");
    check_json(text, "a sample's JSON");
    cv_json_writer_destroy(&w);
}

/*  The chart's own elements, and the escapes cv_xml_text writes. */
static void check_svg(const memory_t *m)
{
    static const char *const opens[] = {"?xml ", "svg ", "rect ", "text ", "title>", "line ", "/"};
    static const char *const escapes[] = {"amp;", "lt;", "gt;", "quot;", "apos;"};
    int line, col;
    if (cv_text_check(m->text, m->len, &line, &col))
        fuzz_fail("the SVG is not UTF-8 at %d:%d", line, col);
    /* XML 1.0's Char: no C0 but tab and line ends, no U+FFFE or U+FFFF */
    for (size_t i = 0; i < m->len; i++)
        if ((unsigned char)m->text[i] < 0x20 && !strchr("\t\n\r", m->text[i]))
            fuzz_fail("the SVG holds the control 0x%02x", (unsigned char)m->text[i]);
    if (memmem(m->text, m->len, "\xef\xbf\xbe", 3) || memmem(m->text, m->len, "\xef\xbf\xbf", 3))
        fuzz_fail("the SVG holds U+FFFE or U+FFFF, which XML 1.0 cannot");
    for (const char *at = m->text; (at = strpbrk(at, "<&")) != NULL; at++) {
        const char *const *list = *at == '<' ? opens : escapes;
        size_t n = *at == '<' ? sizeof opens / sizeof *opens : sizeof escapes / sizeof *escapes;
        size_t i = 0;
        while (i < n && strncmp(at + 1, list[i], strlen(list[i])) != 0)
            i++;
        if (i == n)
            fuzz_fail("the SVG has markup of a leaf's own at: %.40s", at);
    }
}

static void check_tally(audit_tally_t *tally, uint64_t accepted, uint64_t approvals)
{
    if (audit_tally_accepted(tally) > accepted || audit_tally_shared(tally) > accepted + approvals)
        fuzz_fail("the tally counts more reports than accepted and approval leaves");
    memory_t m;
    memory_open(&m);
    audit_tally_print(tally, m.file, NULL);
    memory_close(&m);
    check_readable(&m, "\n", "a summary's table");
    free(m.text);
    memory_open(&m);
    audit_tally_json(tally, m.file);
    memory_close(&m);
    check_json(m.text, "a summary's JSON");
    free(m.text);
    memory_open(&m);
    if (!audit_tally_svg(tally, m.file, "2026-01-01"))
        fuzz_fail("the SVG could not be written to memory");
    memory_close(&m);
    check_svg(&m);
    free(m.text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    audit_tally_t *tally = audit_tally_new(0);
    if (!tally)
        fuzz_fail("audit_tally_new: out of memory");
    const uint8_t *leaf[MAX_LEAVES];
    size_t len[MAX_LEAVES], n = 0;
    for (const uint8_t *at = data, *end = data + size; n < MAX_LEAVES && at <= end; n++) {
        const uint8_t *stop = memchr(at, SEPARATOR, (size_t)(end - at));
        leaf[n] = at;
        len[n] = (size_t)((stop ? stop : end) - at);
        at += len[n] + 1;
    }
    uint64_t accepted = 0, approvals = 0, ms;
    for (size_t i = 0; i < n; i++) {
        accepted += audit_leaf_accepted(leaf[i], len[i], &ms);
        approvals += audit_leaf_approval(leaf[i], len[i], &ms);
        check_trace(leaf[i], len[i]);
        check_sample_text(leaf[i], len[i], i);
        check_approval_text(leaf[i], len[i], i);
        check_sample_json(leaf[i], len[i], i);
        audit_tally_expect(tally, leaf[i], len[i]);
    }
    for (size_t i = 0; i < n; i++) /* the summary's second pass */
        audit_tally_add(tally, leaf[i], len[i]);
    check_tally(tally, accepted, approvals);
    audit_tally_destroy(&tally);
    return 0;
}
