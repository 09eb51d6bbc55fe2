/*  cv_policy_fmt.c: one canonical layout for a policy file, comments kept
 *  (`caveat policy fmt`).
 *
 *  The layout: two-space indents; keys in a fixed order where the language
 *  has one (the top level, agencies, handling codes, rules and screening
 *  entries, a match), others as written; a list of scalars, an empty
 *  mapping and a mapping of one scalar pair in flow style on one line
 *  ([a, b], {}, {mask: year}), longer lists wrapped under their first item;
 *  every other collection in block style; a blank line around top-level
 *  sections that take more than a line and between rules or screening
 *  entries. Scalars are copied as written (quotes and all), block scalars
 *  re-indented, any other that spans lines double-quoted on one line; a
 *  null stays empty.
 *
 *  libfyaml 0.7 keeps some comments on tokens and emits none of them, so
 *  comments are read here, by position, from the text outside scalars. A
 *  comment on its own line goes with the key or list item after it, at its
 *  indentation (with the blank lines between such comments kept); a comment
 *  after content goes at the end of the first line of the key or list item
 *  it follows (a block scalar's header line); comments before the first key
 *  stay at the top and those after the last at the end. Nothing else of the
 *  text's layout is kept.
 *
 *  The result must mean what the text meant: it is parsed again and
 *  compared with the original, node by node (fy_node_compare), and an
 *  error is returned rather than a text that differs. Anchors, aliases
 *  and tags are refused: their layout is not canonical.
 */
#include <libfyaml.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy_internal.h"

#define FMT_WIDTH 100 /* flow lists wrap beyond this column */

typedef struct {
    size_t pos;    /* of the '#' */
    size_t end;    /* end of its line */
    bool own_line; /* nothing but spaces before it on its line */
    int entry;     /* the entry it goes with, or -1: the top, -2: the end */
    bool trailing; /* at the end of the entry's first line, not above it */
} comment_t;

/*  A key of a block mapping or an item of a block sequence: where comments
 *  attach. */
typedef struct {
    struct fy_node *node; /* the pair's key, or the item */
    size_t pos;
} entry_t;

typedef struct {
    const char *text;
    size_t len;
    FILE *out;
    comment_t *comments;
    int n_comments;
    entry_t *entries;
    int n_entries, cap_entries;
    bool *in_scalar; /* per byte of text */
} fmt_t;

/* ------------------------------------------------------------------------ */
/*  Canonical key orders.                                                   */

/*  Where a collection is: what orders its keys and its children's. */
typedef enum {
    C_OTHER,    /* keys as written */
    C_ROOT,     /* the policy */
    C_ENTRIES,  /* rules:, screening:, restrictions: */
    C_ENTRY,    /* one of them */
    C_MATCH,    /* a screening entry's match */
    C_AGENCIES, /* agencies: (ids as written) */
    C_AGENCY,
    C_CODES, /* handling_codes: (codes as written) */
    C_CODE,
} context_t;

static const char *const *order_of(context_t context)
{
    static const char *const root[] = {
        "protocol",       "version",      "description", "levels",         "categories",
        "handling_codes", "retention",    "agencies",    "administrators", "rules",
        "screening",      "restrictions", NULL};
    static const char *const entry[] = {"name",
                                        "description",
                                        "feed",
                                        "categories",
                                        "match",
                                        "from_types",
                                        "from_agencies",
                                        "to_types",
                                        "to_agencies",
                                        "except_to_types",
                                        "except_to_agencies",
                                        "same_area",
                                        "max_level",
                                        "fields",
                                        NULL};
    static const char *const agency[] = {"organisation", "type", "clearance", "areas",
                                         "description",  "key",  NULL};
    static const char *const code[] = {
        "description", "to_types", "to_agencies", "same_organisation", "originator_approval", NULL};
    static const char *const match[] = {"categories", "indicators", "keywords", NULL};
    static const char *const none[] = {NULL};
    switch (context) {
    case C_ROOT:
        return root;
    case C_ENTRY:
        return entry;
    case C_AGENCY:
        return agency;
    case C_CODE:
        return code;
    case C_MATCH:
        return match;
    default:
        return none;
    }
}

/*  The context of the value under key in context. */
static context_t context_under(context_t context, const char *key)
{
    if (context == C_AGENCIES)
        return C_AGENCY;
    if (context == C_CODES)
        return C_CODE;
    if (context == C_ENTRIES)
        return C_ENTRY;
    if (!key)
        return C_OTHER;
    if (context == C_ROOT && (strcmp(key, "rules") == 0 || strcmp(key, "screening") == 0 ||
                              strcmp(key, "restrictions") == 0))
        return C_ENTRIES;
    if (context == C_ROOT && strcmp(key, "agencies") == 0)
        return C_AGENCIES;
    if (context == C_ROOT && strcmp(key, "handling_codes") == 0)
        return C_CODES;
    if (context == C_ENTRY && strcmp(key, "match") == 0)
        return C_MATCH;
    return C_OTHER;
}

/* ------------------------------------------------------------------------ */
/*  Positions and scalars.                                                  */

static size_t start_of(struct fy_node *node)
{
    if (fy_node_is_scalar(node)) {
        const struct fy_mark *mark = fy_token_start_mark(fy_node_get_scalar_token(node));
        return mark ? mark->input_pos : 0;
    }
    void *iter = NULL;
    if (fy_node_is_mapping(node)) {
        struct fy_node_pair *pair = fy_node_mapping_iterate(node, &iter);
        return pair ? start_of(fy_node_pair_key(pair)) : 0;
    }
    struct fy_node *item = fy_node_sequence_iterate(node, &iter);
    return item ? start_of(item) : 0;
}

static bool all_scalars(struct fy_node *seq)
{
    void *iter = NULL;
    struct fy_node *item;
    while ((item = fy_node_sequence_iterate(seq, &iter)))
        if (!fy_node_is_scalar(item))
            return false;
    return true;
}

/*  Emitted on one line: scalars, lists of scalars, {} and {key: scalar}. */
static bool is_flow(struct fy_node *node)
{
    if (fy_node_is_scalar(node))
        return true;
    if (fy_node_is_sequence(node))
        return all_scalars(node);
    int n = fy_node_mapping_item_count(node);
    if (n == 0)
        return true;
    struct fy_node_pair *pair = fy_node_mapping_get_by_index(node, 0);
    return n == 1 && fy_node_is_scalar(fy_node_pair_key(pair)) &&
           fy_node_is_scalar(fy_node_pair_value(pair));
}

static void mark_scalar(fmt_t *f, struct fy_node *node)
{
    struct fy_token *token = fy_node_get_scalar_token(node);
    const struct fy_mark *start = token ? fy_token_start_mark(token) : NULL;
    const struct fy_mark *end = token ? fy_token_end_mark(token) : NULL;
    for (size_t i = start ? start->input_pos : 0; end && i < end->input_pos && i < f->len; i++)
        f->in_scalar[i] = true;
}

static void add_entry(fmt_t *f, struct fy_node *node)
{
    if (f->n_entries == f->cap_entries) {
        f->cap_entries = f->cap_entries ? f->cap_entries * 2 : 64;
        f->entries = realloc(f->entries, (size_t)f->cap_entries * sizeof *f->entries);
        if (!f->entries)
            abort();
    }
    f->entries[f->n_entries++] = (entry_t){node, start_of(node)};
}

/*  Records the scalars' bytes and the entries, in text order. */
static void survey(fmt_t *f, struct fy_node *node)
{
    void *iter = NULL;
    if (fy_node_is_scalar(node)) {
        mark_scalar(f, node);
    } else if (fy_node_is_mapping(node)) {
        bool block = !is_flow(node);
        struct fy_node_pair *pair;
        while ((pair = fy_node_mapping_iterate(node, &iter))) {
            if (block)
                add_entry(f, fy_node_pair_key(pair));
            survey(f, fy_node_pair_key(pair));
            survey(f, fy_node_pair_value(pair));
        }
    } else {
        bool block = !is_flow(node);
        struct fy_node *item;
        while ((item = fy_node_sequence_iterate(node, &iter))) {
            /* a block mapping item starts where its first key does */
            if (block && (!fy_node_is_mapping(item) || is_flow(item)))
                add_entry(f, item);
            survey(f, item);
        }
    }
}

static int by_position(const void *a, const void *b)
{
    size_t x = ((const entry_t *)a)->pos, y = ((const entry_t *)b)->pos;
    return x < y ? -1 : x > y;
}

/* ------------------------------------------------------------------------ */
/*  Comments: found outside scalars, then given to entries.                 */

static void find_comments(fmt_t *f)
{
    bool own_line = true;
    for (size_t i = 0; i < f->len; i++) {
        char c = f->text[i];
        if (c == '\n') {
            own_line = true;
            continue;
        }
        if (c == '#' && !f->in_scalar[i] && (i == 0 || strchr(" \t\n", f->text[i - 1]))) {
            size_t end = i;
            while (end < f->len && f->text[end] != '\n' && f->text[end] != '\r')
                end++;
            f->comments = realloc(f->comments, (size_t)(f->n_comments + 1) * sizeof *f->comments);
            if (!f->comments)
                abort();
            f->comments[f->n_comments++] = (comment_t){i, end, own_line, 0, false};
            i = end - 1;
            continue;
        }
        if (c != ' ' && c != '\t' && c != '\r')
            own_line = false;
    }
}

/*  A comment on its own line goes with the next entry, one after content
 *  with the entry before it; before the first entry: the top; after the
 *  last, on its own line: the end. */
static void attach_comments(fmt_t *f)
{
    for (int i = 0, e = 0; i < f->n_comments; i++) {
        comment_t *c = &f->comments[i];
        while (e < f->n_entries && f->entries[e].pos < c->pos)
            e++;
        if (c->own_line) {
            c->entry = e == 0 ? -1 : e < f->n_entries ? e : -2;
        } else {
            c->entry = e > 0 ? e - 1 : -1;
            c->trailing = e > 0;
        }
    }
}

/*  The entry that starts where node does, or -3: one no comment goes with
 *  (-1 and -2 are the top and the end). */
static int entry_index(const fmt_t *f, struct fy_node *node)
{
    size_t pos = start_of(node);
    int lo = 0, hi = f->n_entries - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (f->entries[mid].pos == pos)
            return mid;
        if (f->entries[mid].pos < pos)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -3;
}

/*  True when a line of only blank space lies wholly between from and to. */
static bool blank_line_between(const fmt_t *f, size_t from, size_t to)
{
    bool blank = false;
    for (size_t i = from; i < to && i < f->len; i++) {
        if (f->text[i] == '\n') {
            if (blank)
                return true;
            blank = true;
        } else if (!strchr(" \t\r", f->text[i])) {
            blank = false;
        }
    }
    return false;
}

/*  The comments on their own lines that go with entry (or -1, -2), each
 *  at indent, keeping the blank lines between them and after the last. */
static void put_leading(fmt_t *f, int entry, int indent, size_t next_pos)
{
    const comment_t *last = NULL;
    for (int i = 0; i < f->n_comments; i++) {
        const comment_t *c = &f->comments[i];
        if (c->entry != entry || c->trailing)
            continue;
        if (last && blank_line_between(f, last->end, c->pos))
            fputc('\n', f->out);
        fprintf(f->out, "%*s%.*s\n", indent, "", (int)(c->end - c->pos), f->text + c->pos);
        last = c;
    }
    if (last && next_pos && blank_line_between(f, last->end, next_pos))
        fputc('\n', f->out);
}

static void put_trailing(fmt_t *f, int entry)
{
    for (int i = 0; i < f->n_comments; i++)
        if (f->comments[i].entry == entry && f->comments[i].trailing)
            fprintf(f->out, "  %.*s", (int)(f->comments[i].end - f->comments[i].pos),
                    f->text + f->comments[i].pos);
}

/* ------------------------------------------------------------------------ */
/*  Emitting.                                                               */

/*  A block scalar re-indented to indent: its header ("|", ">-"), found
 *  before the content's first line, then the content lines less the
 *  source's indentation. False when that cannot be done safely (an
 *  explicit indentation or kept trailing lines in the header): the caller
 *  quotes it instead. */
static bool reindent_block(FILE *out, const fmt_t *f, size_t start, size_t end, int indent)
{
    size_t header = start, line = start;
    if (strchr("|>", f->text[start])) { /* the marks span the header too */
        while (line < end && f->text[line] != '\n')
            line++;
        line++;
    } else {
        while (line > 0 && f->text[line - 1] != '\n')
            line--;
        /* back from the end of the line before the content */
        for (header = line > 1 ? line - 2 : 0; header > 0 && !strchr("|>:\n", f->text[header]);)
            header--;
    }
    if (!f->text[header] || !strchr("|>", f->text[header]))
        return false;
    size_t header_end = header;
    while (header_end < line && !strchr(" \t#\r\n", f->text[header_end]))
        header_end++;
    const char *head = f->text + header;
    if (strcspn(head, "123456789+") < header_end - header)
        return false;
    fprintf(out, "%.*s", (int)(header_end - header), head);
    while (end > line && strchr(" \n\r", f->text[end - 1]))
        end--;
    int base = -1;
    for (size_t at = line; at < end;) {
        const char *text = f->text + at, *stop = memchr(text, '\n', end - at);
        stop = stop ? stop : f->text + end;
        int spaces = 0;
        while (text + spaces < stop && text[spaces] == ' ')
            spaces++;
        if (text + spaces == stop || (text + spaces + 1 == stop && text[spaces] == '\r')) {
            fputc('\n', out);
        } else {
            if (base < 0)
                base = spaces;
            if (spaces < base)
                return false;
            fprintf(out, "\n%*s%.*s", indent, "", (int)(stop - text - base), text + base);
        }
        at = (size_t)(stop - f->text) + 1;
    }
    return true;
}

static bool put_block_scalar(fmt_t *f, size_t start, size_t end, int indent)
{
    char *block = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&block, &size);
    if (!out)
        abort();
    bool ok = reindent_block(out, f, start, end, indent);
    if (fclose(out) != 0)
        abort();
    if (ok)
        fputs(block, f->out);
    free(block);
    return ok;
}

/*  The scalar's value as a JSON string, which YAML reads as a double-quoted
 *  scalar: for the scalars that cannot be copied. */
static void put_quoted(fmt_t *f, struct fy_node *node)
{
    size_t len = 0;
    const char *value = fy_node_get_scalar(node, &len);
    char *copy = strndup(value ? value : "", len);
    cv_json_writer_t *json = cv_json_writer_new(0);
    if (!copy || !json)
        abort();
    cv_json_string(json, copy);
    fputs(cv_json_writer_text(json), f->out);
    cv_json_writer_destroy(&json);
    free(copy);
}

/*  A scalar as written, quotes included, when it is on one line; a block
 *  scalar re-indented; any other quoted. libfyaml's marks span a quoted
 *  scalar's content, and a block scalar's from its first content line. */
/*  An empty plain scalar: a null, written as nothing at all. */
static bool is_null(struct fy_node *node)
{
    size_t len = 1;
    return fy_node_is_scalar(node) && fy_node_get_style(node) == FYNS_PLAIN &&
           (!fy_node_get_scalar(node, &len) || len == 0);
}

static void put_scalar(fmt_t *f, struct fy_node *node, int indent)
{
    if (is_null(node))
        return;
    struct fy_token *token = fy_node_get_scalar_token(node);
    const struct fy_mark *start = token ? fy_token_start_mark(token) : NULL;
    const struct fy_mark *end = token ? fy_token_end_mark(token) : NULL;
    enum fy_node_style style = fy_node_get_style(node);
    if (start && end && end->input_pos >= start->input_pos) {
        size_t from = start->input_pos, to = end->input_pos;
        bool quoted = style == FYNS_SINGLE_QUOTED || style == FYNS_DOUBLE_QUOTED;
        char quote = style == FYNS_SINGLE_QUOTED ? '\'' : '"';
        if (quoted && from > 0 && f->text[from - 1] == quote && to < f->len &&
            f->text[to] == quote) {
            from--;
            to++;
        }
        if ((style == FYNS_LITERAL || style == FYNS_FOLDED) &&
            put_block_scalar(f, from, to, indent))
            return;
        bool copied = (quoted || style == FYNS_PLAIN) && to > from &&
                      !memchr(f->text + from, '\n', to - from) &&
                      (!quoted || (f->text[from] == quote && f->text[to - 1] == quote));
        if (copied) {
            fwrite(f->text + from, 1, to - from, f->out);
            return;
        }
    }
    put_quoted(f, node);
}

/*  [a, b, c] wrapped under its first item past FMT_WIDTH; {} or {k: v}. */
static void put_flow(fmt_t *f, struct fy_node *node, int indent, int column)
{
    if (fy_node_is_scalar(node)) {
        put_scalar(f, node, indent);
        return;
    }
    if (fy_node_is_mapping(node)) {
        struct fy_node_pair *pair = fy_node_mapping_get_by_index(node, 0);
        fputc('{', f->out);
        if (pair) {
            put_scalar(f, fy_node_pair_key(pair), indent);
            fputs(": ", f->out);
            put_scalar(f, fy_node_pair_value(pair), indent);
        }
        fputc('}', f->out);
        return;
    }
    fputc('[', f->out);
    int first = column + 1, at = first;
    void *iter = NULL;
    struct fy_node *item;
    for (int i = 0; (item = fy_node_sequence_iterate(node, &iter)); i++) {
        char *text = NULL;
        size_t size = 0;
        FILE *saved = f->out;
        f->out = open_memstream(&text, &size);
        if (!f->out)
            abort();
        put_scalar(f, item, indent);
        fclose(f->out);
        f->out = saved;
        if (i && at + 2 + (int)size > FMT_WIDTH) {
            fprintf(f->out, ",\n%*s", first, "");
            at = first;
        } else if (i) {
            fputs(", ", f->out);
            at += 2;
        }
        fputs(text, f->out);
        at += (int)size;
        free(text);
    }
    fputc(']', f->out);
}

static void put_block(fmt_t *f, struct fy_node *node, int indent, context_t context,
                      bool first_inline);

/*  A value on the key's line, then the entry's trailing comments: after a
 *  block scalar's header, as after its content they would be content. */
static void put_value_line(fmt_t *f, struct fy_node *value, int indent, int column, int entry)
{
    enum fy_node_style style = fy_node_get_style(value);
    if (!fy_node_is_scalar(value) || (style != FYNS_LITERAL && style != FYNS_FOLDED)) {
        put_flow(f, value, indent, column);
        put_trailing(f, entry);
        fputc('\n', f->out);
        return;
    }
    char *text = NULL;
    size_t size = 0;
    FILE *saved = f->out;
    f->out = open_memstream(&text, &size);
    if (!f->out)
        abort();
    put_scalar(f, value, indent);
    if (fclose(f->out) != 0)
        abort();
    f->out = saved;
    const char *header_end = strchr(text, '\n');
    size_t header = header_end ? (size_t)(header_end - text) : size;
    fwrite(text, 1, header, f->out);
    put_trailing(f, entry);
    fprintf(f->out, "%s\n", text + header);
    free(text);
}

/*  "key: value", or "key:" and the block under it, at indent; when
 *  inline_start the line is begun already ("- " of an item). */
static void put_pair(fmt_t *f, struct fy_node_pair *pair, int indent, context_t context,
                     bool inline_start)
{
    struct fy_node *key = fy_node_pair_key(pair), *value = fy_node_pair_value(pair);
    int entry = entry_index(f, key);
    if (!inline_start) {
        put_leading(f, entry, indent, start_of(key));
        fprintf(f->out, "%*s", indent, "");
    }
    long key_at = ftell(f->out);
    put_scalar(f, key, indent);
    fputc(':', f->out);
    const char *name = fy_node_is_scalar(key) ? fy_node_get_scalar0(key) : NULL;
    if (is_flow(value)) {
        if (!is_null(value))
            fputc(' ', f->out);
        put_value_line(f, value, indent + 2, indent + (int)(ftell(f->out) - key_at), entry);
        return;
    }
    put_trailing(f, entry);
    fputc('\n', f->out);
    put_block(f, value, indent + 2, context_under(context, name), false);
}

static const char *key_name(struct fy_node_pair *pair)
{
    struct fy_node *key = fy_node_pair_key(pair);
    return fy_node_is_scalar(key) ? fy_node_get_scalar0(key) : NULL;
}

/*  The pairs of a block mapping in its context's order, then the rest as
 *  written; a blank line between top-level sections. */
static void put_mapping(fmt_t *f, struct fy_node *map, int indent, context_t context,
                        bool first_inline)
{
    int n = fy_node_mapping_item_count(map);
    int *sequence = calloc((size_t)n + 1, sizeof *sequence);
    bool *done = calloc((size_t)n + 1, sizeof *done);
    if (!sequence || !done)
        abort();
    int count = 0;
    for (const char *const *want = order_of(context); *want; want++)
        for (int i = 0; i < n; i++) {
            const char *name = key_name(fy_node_mapping_get_by_index(map, i));
            if (!done[i] && name && strcmp(name, *want) == 0) {
                sequence[count++] = i;
                done[i] = true;
            }
        }
    for (int i = 0; i < n; i++)
        if (!done[i])
            sequence[count++] = i;
    for (int i = 0; i < count; i++) {
        /* top-level sections that take more than a line stand apart */
        if (i && context == C_ROOT &&
            (!is_flow(fy_node_pair_value(fy_node_mapping_get_by_index(map, sequence[i]))) ||
             !is_flow(fy_node_pair_value(fy_node_mapping_get_by_index(map, sequence[i - 1])))))
            fputc('\n', f->out);
        put_pair(f, fy_node_mapping_get_by_index(map, sequence[i]), indent, context,
                 i == 0 && first_inline);
    }
    free(sequence);
    free(done);
}

/*  The entry of a block sequence's item: a block mapping's is its first
 *  key's, as the key starts where the item does. */
static int item_entry(const fmt_t *f, struct fy_node *item)
{
    if (fy_node_is_mapping(item) && !is_flow(item))
        return entry_index(f, fy_node_pair_key(fy_node_mapping_get_by_index(item, 0)));
    return entry_index(f, item);
}

/*  Block sequence items: "- " and the item, a mapping's first key on the
 *  dash's line; a blank line between rules or screening entries. */
static void put_sequence(fmt_t *f, struct fy_node *seq, int indent, context_t context)
{
    void *iter = NULL;
    struct fy_node *item;
    context_t items = context_under(context, NULL);
    for (int i = 0; (item = fy_node_sequence_iterate(seq, &iter)); i++) {
        int entry = item_entry(f, item);
        if (i && context == C_ENTRIES)
            fputc('\n', f->out);
        put_leading(f, entry, indent, start_of(item));
        fprintf(f->out, "%*s- ", indent, "");
        if (fy_node_is_mapping(item) && !is_flow(item)) {
            put_mapping(f, item, indent + 2, items, true);
        } else if (is_flow(item)) {
            put_flow(f, item, indent + 2, indent + 2);
            put_trailing(f, entry);
            fputc('\n', f->out);
        } else {
            put_trailing(f, entry);
            fputc('\n', f->out);
            put_block(f, item, indent + 2, items, false);
        }
    }
}

static void put_block(fmt_t *f, struct fy_node *node, int indent, context_t context,
                      bool first_inline)
{
    if (fy_node_is_mapping(node))
        put_mapping(f, node, indent, context, first_inline);
    else
        put_sequence(f, node, indent, context);
}

/* ------------------------------------------------------------------------ */

/*  Anchors, aliases and tags: refused, as their layout is not canonical. */
static bool has_references(struct fy_document *doc, struct fy_node *node)
{
    void *iter = NULL;
    if (fy_document_anchor_iterate(doc, &iter))
        return true;
    if (fy_node_is_alias(node) || fy_node_get_tag_token(node))
        return true;
    iter = NULL;
    if (fy_node_is_mapping(node)) {
        struct fy_node_pair *pair;
        while ((pair = fy_node_mapping_iterate(node, &iter)))
            if (has_references(doc, fy_node_pair_key(pair)) ||
                has_references(doc, fy_node_pair_value(pair)))
                return true;
    } else if (fy_node_is_sequence(node)) {
        struct fy_node *item;
        while ((item = fy_node_sequence_iterate(node, &iter)))
            if (has_references(doc, item))
                return true;
    }
    return false;
}

static struct fy_document *parse(const char *text, size_t len, const char *name, cv_error_t *err)
{
    int line, col;
    const char *bad = cv_text_check(text, len, &line, &col);
    if (bad) {
        cv_error_set(err, name, line, col, "%s", bad);
        return NULL;
    }
    struct fy_diag *diag = cv_diag_collecting();
    struct fy_parse_cfg cfg = {.flags = FYPCF_QUIET | FYPCF_COLLECT_DIAG, .diag = diag};
    struct fy_document *doc = fy_document_build_from_string(&cfg, text, len);
    if (!doc) {
        void *iter = NULL;
        struct fy_diag_error *e = diag ? fy_diag_errors_iterate(diag, &iter) : NULL;
        cv_error_set(err, name, e ? e->line : 0, e ? e->column : 0, "%s",
                     e ? e->msg : "not a YAML document");
    }
    fy_diag_destroy(diag);
    return doc;
}

static char *format_document(const char *text, size_t len, struct fy_node *root)
{
    fmt_t f = {.text = text, .len = len};
    f.in_scalar = calloc(len + 1, 1);
    char *out = NULL;
    size_t size = 0;
    f.out = open_memstream(&out, &size);
    if (!f.in_scalar || !f.out)
        abort();
    survey(&f, root);
    if (f.n_entries)
        qsort(f.entries, (size_t)f.n_entries, sizeof *f.entries, by_position);
    find_comments(&f);
    attach_comments(&f);
    put_leading(&f, -1, 0, f.n_entries ? f.entries[0].pos : 0);
    if (is_flow(root)) { /* {} or [] or one pair: a line of its own */
        put_flow(&f, root, 0, 0);
        fputc('\n', f.out);
    } else {
        put_block(&f, root, 0, C_ROOT, false);
    }
    put_leading(&f, -2, 0, 0);
    if (fclose(f.out) != 0)
        abort();
    free(f.in_scalar);
    free(f.comments);
    free(f.entries);
    return out;
}

char *cv_policy_format(const char *text, size_t len, const char *name, cv_error_t *err)
{
    struct fy_document *doc = parse(text, len, name, err);
    if (!doc)
        return NULL;
    struct fy_node *root = fy_document_root(doc);
    char *out = NULL;
    if (!root || fy_node_is_scalar(root))
        cv_error_set(err, name, 0, 0, "not a policy: expected a mapping");
    else if (has_references(doc, root))
        cv_error_set(err, name, 0, 0,
                     "anchors, aliases and tags are not formatted; write the file out in full");
    else
        out = format_document(text, len, root);
    /* the formatted text must say what the text said */
    struct fy_document *again = out ? parse(out, strlen(out), name, NULL) : NULL;
    if (out && (!again || !fy_node_compare(root, fy_document_root(again)))) {
        cv_error_set(err, name, 0, 0, "cannot format this file without changing what it says");
        free(out);
        out = NULL;
    }
    fy_document_destroy(again);
    fy_document_destroy(doc);
    return out;
}
