/*  audit_leaf_print.c: see audit_leaf_print.h. */
#include <inttypes.h>
#include <libfyaml.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit_leaf_print.h"
#include "leaf_json.h"

/*  Whether a field marked outcome (NULL: shared) is one of outcome's. */
static bool same_outcome(const char *marked, const char *outcome)
{
    return marked == outcome || (marked && outcome && strcmp(marked, outcome) == 0);
}

/*  The fields whose outcome is outcome, as "label (mask): a, b"; nothing
 *  when there are none. */
static void print_fields(FILE *out, const char *label, const char *mask, struct fy_node *fields,
                         const char **outcomes, int n, const char *outcome)
{
    bool first = true;
    for (int i = 0; i < n; i++) {
        if (!same_outcome(outcomes[i], outcome))
            continue;
        if (first) {
            fprintf(out, "    %s", label);
            if (mask) {
                fputs(" (", out);
                audit_text(out, mask);
                fputc(')', out);
            }
            fputc(':', out);
        }
        fputs(first ? " " : ", ", out);
        audit_text(out, fy_node_get_scalar0(fy_node_sequence_get_by_index(fields, i)));
        first = false;
    }
    if (!first)
        fputc('\n', out);
}

/*  Marks the fields a list of indexes names with outcome. */
static void mark(struct fy_node *indexes, const char **outcomes, int n, const char *outcome)
{
    void *iter = NULL;
    struct fy_node *item;
    while (indexes && fy_node_is_sequence(indexes) &&
           (item = fy_node_sequence_iterate(indexes, &iter))) {
        const char *text = fy_node_get_scalar0(item);
        long i = text ? strtol(text, NULL, 10) : -1;
        if (i >= 0 && i < n)
            outcomes[i] = outcome;
    }
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
    const char **outcomes = calloc((size_t)n, sizeof *outcomes);
    if (!outcomes)
        abort();
    struct fy_node *masked = audit_leaf_member(view, "masked");
    void *iter = NULL;
    struct fy_node_pair *pair;
    while (masked && fy_node_is_mapping(masked) && (pair = fy_node_mapping_iterate(masked, &iter)))
        mark(fy_node_pair_value(pair), outcomes, n, fy_node_get_scalar0(fy_node_pair_key(pair)));
    mark(audit_leaf_member(view, "withheld"), outcomes, n, "withheld");
    print_fields(out, "shared", NULL, fields, outcomes, n, NULL);
    iter = NULL;
    while (masked && fy_node_is_mapping(masked) &&
           (pair = fy_node_mapping_iterate(masked, &iter))) {
        const char *name = fy_node_get_scalar0(fy_node_pair_key(pair));
        if (name) /* a key that is not a string marked nothing */
            print_fields(out, "masked", name, fields, outcomes, n, name);
    }
    print_fields(out, "withheld", NULL, fields, outcomes, n, "withheld");
    free(outcomes);
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

/*  The leaf's time, or "?" for one gmtime cannot take. */
static void print_time(FILE *out, const char *data, size_t len)
{
    uint64_t ms = 0;
    audit_leaf_accepted(data, len, &ms);
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char when[32];
    if (!gmtime_r(&t, &tm) || !strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm))
        strcpy(when, "?");
    fputs(when, out);
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
    struct fy_node *policy = audit_leaf_member(leaf, "policy");
    if (policy) {
        fputs(", policy ", out);
        audit_text(out, audit_leaf_text(policy, "protocol"));
        fputs(" version ", out);
        audit_text(out, audit_leaf_text(policy, "version"));
    }
    fputc('\n', out);
    struct fy_node *to = audit_leaf_member(leaf, "to"), *item;
    void *iter = NULL;
    while (to && fy_node_is_sequence(to) && (item = fy_node_sequence_iterate(to, &iter)))
        if (fy_node_is_mapping(item))
            print_recipient(out, leaf, item);
    fy_document_destroy(doc);
}

void audit_leaf_write_json(cv_json_writer_t *w, uint64_t index, const char *data, size_t len)
{
    struct fy_document *doc = audit_leaf_parse(data, len);
    cv_json_object_begin(w);
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
    cv_json_object_end(w);
    fy_document_destroy(doc);
}
