/*  audit_leaf_print.c: see audit_leaf_print.h. */
#include <inttypes.h>
#include <libfyaml.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit_leaf_print.h"
#include "leaf_json.h"

/*  A recipient's view of the leaf's fields: each field's group, 0 for
 *  shared, 1 to masks for the view's masks in its order, masks + 1 for
 *  withheld; a field in no list is shared. Each list is read once, and
 *  the fields too, so that a leaf of many fields costs no more than its
 *  length. */
typedef struct {
    struct fy_node **field; /* the leaf's fields, in order */
    int n;
    const char **mask; /* mask[g - 1]: group g's mask */
    int masks;
    int *group; /* of each field */
} grouping_t;

/*  Puts the fields a list of indexes names in group. */
static void mark(grouping_t *g, struct fy_node *indexes, int group)
{
    void *iter = NULL;
    struct fy_node *item;
    while (indexes && fy_node_is_sequence(indexes) &&
           (item = fy_node_sequence_iterate(indexes, &iter))) {
        const char *text = fy_node_get_scalar0(item);
        long i = text ? strtol(text, NULL, 10) : -1;
        if (i >= 0 && i < g->n)
            g->group[i] = group;
    }
}

/*  The view's masks and its withheld fields into g, whose fields are
 *  read: a mask whose name is not a string marks its fields shared. */
static void group_fields(grouping_t *g, struct fy_node *view)
{
    struct fy_node *masked = audit_leaf_member(view, "masked");
    int pairs = masked && fy_node_is_mapping(masked) ? fy_node_mapping_item_count(masked) : 0;
    g->mask = calloc((size_t)(pairs > 0 ? pairs : 1), sizeof *g->mask);
    g->group = calloc((size_t)g->n, sizeof *g->group);
    if (!g->mask || !g->group)
        abort();
    void *iter = NULL;
    struct fy_node_pair *pair;
    while (pairs > 0 && (pair = fy_node_mapping_iterate(masked, &iter))) {
        const char *name = fy_node_get_scalar0(fy_node_pair_key(pair));
        if (name)
            g->mask[g->masks++] = name;
        mark(g, fy_node_pair_value(pair), name ? g->masks : 0);
    }
    mark(g, audit_leaf_member(view, "withheld"), g->masks + 1);
}

/*  The fields of group, as "label (mask): a, b"; nothing when there are
 *  none. order lists the fields group by group, from start[group]. */
static void print_group(FILE *out, const grouping_t *g, const int *order, const int *start,
                        int group)
{
    if (start[group] == start[group + 1])
        return;
    const char *mask = group > 0 && group <= g->masks ? g->mask[group - 1] : NULL;
    fprintf(out, "    %s", group == 0 ? "shared" : mask ? "masked" : "withheld");
    if (mask) {
        fputs(" (", out);
        audit_text(out, mask);
        fputc(')', out);
    }
    fputc(':', out);
    for (int i = start[group]; i < start[group + 1]; i++) {
        fputs(i == start[group] ? " " : ", ", out);
        audit_text(out, fy_node_get_scalar0(g->field[order[i]]));
    }
    fputc('\n', out);
}

/*  Every group in turn, shared first and withheld last: the fields sorted
 *  by group once (a counting sort), each group's in the leaf's order. */
static void print_groups(FILE *out, const grouping_t *g)
{
    int groups = g->masks + 2, *start = calloc((size_t)groups + 1, sizeof *start),
        *order = calloc((size_t)g->n, sizeof *order);
    if (!start || !order)
        abort();
    for (int i = 0; i < g->n; i++)
        start[g->group[i] + 1]++;
    for (int k = 0; k < groups; k++)
        start[k + 1] += start[k];
    int *next = calloc((size_t)groups, sizeof *next);
    if (!next)
        abort();
    memcpy(next, start, (size_t)groups * sizeof *next);
    for (int i = 0; i < g->n; i++)
        order[next[g->group[i]]++] = i;
    for (int k = 0; k < groups; k++)
        print_group(out, g, order, start, k);
    free(next);
    free(order);
    free(start);
}

/*  The view a recipient's "view" names: its index in the leaf's "views",
 *  in decimal digits. */
static struct fy_node *view_of(struct fy_node *views, const char *index)
{
    if (!views || !index || !fy_node_is_sequence(views) || !*index || strlen(index) > 9 ||
        strspn(index, "0123456789") != strlen(index))
        return NULL;
    return fy_node_sequence_get_by_index(views, atoi(index));
}

/*  The leaf's fields, read once into g. */
static void read_fields(grouping_t *g, struct fy_node *fields)
{
    g->n = fy_node_sequence_item_count(fields);
    g->field = calloc((size_t)(g->n > 0 ? g->n : 1), sizeof *g->field);
    if (!g->field)
        abort();
    void *iter = NULL;
    for (int i = 0; i < g->n; i++)
        g->field[i] = fy_node_sequence_iterate(fields, &iter);
}

/*  The fields a recipient was given, from the leaf's fields and the
 *  recipient's view of them: those the view does not name are shared. */
static void print_view(FILE *out, struct fy_node *leaf, struct fy_node *recipient)
{
    struct fy_node *view =
        view_of(audit_leaf_member(leaf, "views"), audit_leaf_text(recipient, "view"));
    struct fy_node *fields = audit_leaf_member(leaf, "fields");
    int n = fields && fy_node_is_sequence(fields) ? fy_node_sequence_item_count(fields) : 0;
    if (view && fy_node_is_mapping(view) && !fields) { /* the leaf lists none: all shared */
        fputs("    shared: every field of the report as stored\n", out);
        return;
    }
    if (!view || !fy_node_is_mapping(view) || n <= 0) {
        fputs("    (the envelope alone)\n", out);
        return;
    }
    grouping_t g = {0};
    read_fields(&g, fields);
    group_fields(&g, view);
    print_groups(out, &g);
    free(g.field);
    free(g.mask);
    free(g.group);
}

static void print_strings(FILE *out, struct fy_node *list, const char *sep)
{
    void *iter = NULL;
    struct fy_node *item;
    const char *between = "";
    while (list && fy_node_is_sequence(list) && (item = fy_node_sequence_iterate(list, &iter))) {
        fputs(between, out);
        audit_text(out, fy_node_get_scalar0(item));
        between = sep;
    }
}

static void print_recipient(FILE *out, struct fy_node *leaf, struct fy_node *to)
{
    const char *organisation = audit_leaf_text(to, "organisation");
    fputs("  ", out);
    audit_text(out, audit_leaf_text(to, "agency"));
    if (organisation) {
        fputs(" (", out);
        audit_text(out, organisation);
        fputc(')', out);
    }
    if (!audit_leaf_true(to, "delivered")) {
        fputs(": not delivered: ", out);
        print_strings(out, audit_leaf_member(to, "reasons"), "; ");
        fputc('\n', out);
        return;
    }
    fputs(": delivered under ", out);
    print_strings(out, audit_leaf_member(to, "rules"), ", ");
    if (audit_leaf_text(to, "feed")) {
        fputs(" (feed ", out);
        audit_text(out, audit_leaf_text(to, "feed"));
        fputc(')', out);
    }
    fputc('\n', out);
    print_view(out, leaf, to);
}

/*  Each recipient of the leaf's list to: how many. */
static int print_recipients(FILE *out, struct fy_node *leaf, struct fy_node *to)
{
    void *iter = NULL;
    struct fy_node *item;
    int n = 0;
    while (to && fy_node_is_sequence(to) && (item = fy_node_sequence_iterate(to, &iter)))
        if (fy_node_is_mapping(item) && ++n)
            print_recipient(out, leaf, item);
    return n;
}

/*  The leaf's time, or "?" for one gmtime cannot take. */
static void print_time(FILE *out, const char *data, size_t len)
{
    uint64_t ms = 0;
    if (!audit_leaf_accepted(data, len, &ms))
        audit_leaf_approval(data, len, &ms);
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char when[32];
    if (!gmtime_r(&t, &tm) || !strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm))
        strcpy(when, "?");
    fputs(when, out);
}

/*  ", policy P version V" when the leaf names its policy. */
static void print_policy(FILE *out, struct fy_node *leaf)
{
    struct fy_node *policy = audit_leaf_member(leaf, "policy");
    if (!policy)
        return;
    fputs(", policy ", out);
    audit_text(out, audit_leaf_text(policy, "protocol"));
    fputs(" version ", out);
    audit_text(out, audit_leaf_text(policy, "version"));
}

void audit_leaf_print(FILE *out, uint64_t index, const char *data, size_t len)
{
    struct fy_document *doc = audit_leaf_parse(data, len);
    struct fy_node *leaf = doc ? fy_document_root(doc) : NULL;
    fprintf(out, "\nleaf %" PRIu64, index);
    if (!leaf) {
        fputs(" (not JSON): ", out);
        cv_text_write(out, data, len);
        fputc('\n', out);
        return;
    }
    fputs(", ", out);
    print_time(out, data, len);
    fputs(": report ", out);
    audit_text(out, audit_leaf_text(leaf, "report"));
    fputs(" of ", out);
    audit_text(out, audit_leaf_text(leaf, "originator"));
    fputs(", category ", out);
    audit_text(out, audit_leaf_text(leaf, "category"));
    print_policy(out, leaf);
    fputc('\n', out);
    print_recipients(out, leaf, audit_leaf_member(leaf, "to"));
    fy_document_destroy(doc);
}

/*  The agencies an approval leaf of the earlier form released the report
 *  to: their ids alone. */
static int print_released(FILE *out, struct fy_node *released)
{
    void *iter = NULL;
    struct fy_node *item;
    int n = 0;
    while (released && fy_node_is_sequence(released) &&
           (item = fy_node_sequence_iterate(released, &iter)) && ++n) {
        fputs("  ", out);
        audit_text(out, fy_node_get_scalar0(item));
        fputs(": delivered (its leaf, of an earlier caveatd, names no rules and no fields)\n", out);
    }
    return n;
}

void audit_leaf_print_approval(FILE *out, uint64_t index, const char *data, size_t len)
{
    struct fy_document *doc = audit_leaf_parse(data, len);
    struct fy_node *leaf = doc ? fy_document_root(doc) : NULL;
    fprintf(out, "  approval at leaf %" PRIu64, index);
    if (!leaf) {
        fputs(" (not JSON)\n", out);
        fy_document_destroy(doc);
        return;
    }
    fputs(", ", out);
    print_time(out, data, len);
    fputs(", to ", out);
    audit_text(out, audit_leaf_text(leaf, "to"));
    print_policy(out, leaf);
    fputs(", released it to:\n", out);
    struct fy_node *to = audit_leaf_member(leaf, "recipients");
    int n = to ? print_recipients(out, leaf, to)
               : print_released(out, audit_leaf_member(leaf, "released"));
    if (n == 0)
        fputs("  none new: every agency it names had it already, or the policy releases it to "
              "none\n",
              out);
    fy_document_destroy(doc);
}

void audit_leaf_json_members(cv_json_writer_t *w, uint64_t index, const char *data, size_t len)
{
    struct fy_document *doc = audit_leaf_parse(data, len);
    cv_json_key(w, "index");
    cv_json_uint(w, index);
    cv_json_key(w, "leaf");
    if (doc) {
        audit_node_json(w, fy_document_root(doc));
    } else {
        /* the writer takes a C string: the bytes up to a NUL, made valid */
        char *text = strndup(data, len);
        if (!text)
            abort();
        cv_json_string(w, text);
        free(text);
    }
    fy_document_destroy(doc);
}

void audit_leaf_write_json(cv_json_writer_t *w, uint64_t index, const char *data, size_t len)
{
    cv_json_object_begin(w);
    audit_leaf_json_members(w, index, data, len);
    cv_json_object_end(w);
}
