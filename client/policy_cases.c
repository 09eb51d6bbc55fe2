/*  A protocol's test cases, read and run (`caveat policy test`).
 *
 *  Runs a protocol's test cases (examples/CASES.yaml documents the format):
 *  each case decides one report for one recipient with the real engine and
 *  checks what the recipient would get. Like `opa test`, a failing case
 *  prints where its expectation is and what went wrong, and the run ends
 *  with a count.
 *
 *  All cases are read and checked first, so bad input never leaves half a
 *  run behind. Views are checked on their JSON form, the form recipients
 *  see, so a value is compared as the text a subscriber would read.
 *
 *  Results are text, one JSON object, or JUnit XML for CI; with coverage,
 *  also the policy's entries that no case's decision names, and the
 *  restrictions that capped no field of a case's view.
 */
#include <errno.h>
#include <libfyaml.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy_cases.h"

/*  The keys a case may have; the order is that of the case_t arrays. */
enum {
    K_NAME,
    K_REPORT,
    K_TO,
    K_APPROVALS,
    K_DELIVERED,
    K_REFUSED,
    K_FEED,
    K_RULES,
    K_PRESENT,
    K_ABSENT,
    K_EQUALS,
    K_MATCHES,
    K_MASKED,
    K_REASON,
    K_COUNT
};

static const char *const case_keys[K_COUNT] = {
    "name",  "report",  "to",     "approvals", "delivered", "refused", "feed",
    "rules", "present", "absent", "equals",    "matches",   "masked",  "reason",
};

static const char *const mask_names[] = {"year",      "postcode_district", "initials",
                                         "round_1km", "pseudonymise",      NULL};

typedef struct {
    struct fy_node *node;         /* the case's mapping */
    struct fy_node *key[K_COUNT]; /* NULL when the key is not given */
    struct fy_node *value[K_COUNT];
    const char *name;
    Caveat__Report *report;
    int recipient;
    const char **approvals;
    size_t n_approvals;
    bool delivered, refused;
    bool failed;
    char **failures; /* "FILE:LINE:COL: what", for the JSON and JUnit reports */
    int n_failures;
} case_t;

typedef struct {
    const char *file; /* the cases file, for messages */
    const cv_cases_options_t *options;
    const cv_policy_t *policy;
    const cv_schema_t *schema;
    case_t *cases;
    int n_cases;
    bool *exercised; /* per coverage item (see item_name): some case's decision names it */
} runner_t;

/* ------------------------------------------------------------------------ */
/*  Messages.                                                               */

/*  Bad input: "FILE:LINE:COL: error: what" on options->err. Returns false. */
static bool bad(const runner_t *r, struct fy_node *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool bad(const runner_t *r, struct fy_node *at, const char *fmt, ...)
{
    cv_error_t err;
    va_list ap;
    va_start(ap, fmt);
    cv_error_vat(&err, r->file, at, fmt, ap);
    va_end(ap);
    fprintf(r->options->err, "%s\n", err.msg);
    return false;
}

/*  A failed expectation: kept with the case for the JSON and JUnit reports,
 *  and in text "FILE:LINE:COL: FAIL name: what" on options->out at once. */
static void fail(const runner_t *r, case_t *c, struct fy_node *at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void fail(const runner_t *r, case_t *c, struct fy_node *at, const char *fmt, ...)
{
    int line = 0, col = 0;
    cv_node_position(at ? at : c->node, &line, &col);
    char *what = NULL, *failure = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&what, fmt, ap);
    va_end(ap);
    if (n < 0 || asprintf(&failure, "%s:%d:%d: %s", r->file, line, col, what) < 0)
        abort();
    if (r->options->format == CV_CASES_TEXT)
        fprintf(r->options->out, "%s:%d:%d: FAIL %s: %s\n", r->file, line, col, c->name, what);
    free(what);
    c->failures = realloc(c->failures, (size_t)(c->n_failures + 1) * sizeof *c->failures);
    if (!c->failures)
        abort();
    c->failures[c->n_failures++] = failure;
    c->failed = true;
}

/*  Where to point at for key k: its value, else the key itself. */
static struct fy_node *at(const case_t *c, int k)
{
    if (c->value[k] && fy_node_is_scalar(c->value[k]))
        return c->value[k];
    return c->key[k] ? c->key[k] : c->node;
}

/* ------------------------------------------------------------------------ */
/*  Reading the cases file. Everything a case says is checked here.         */

static const char *text_of(struct fy_node *node)
{
    return node && fy_node_is_scalar(node) && !fy_node_is_alias(node) ? fy_node_get_scalar0(node)
                                                                      : NULL;
}

static bool is_null(struct fy_node *node)
{
    if (!node)
        return true;
    const char *text = text_of(node);
    return text && fy_node_get_style(node) == FYNS_PLAIN &&
           (!*text || strcmp(text, "~") == 0 || strcmp(text, "null") == 0);
}

static bool scalar(const runner_t *r, case_t *c, int k, const char **out)
{
    *out = text_of(c->value[k]);
    if (!*out || is_null(c->value[k]))
        return bad(r, at(c, k), "%s: expected a single value", case_keys[k]);
    return true;
}

static bool boolean(const runner_t *r, case_t *c, int k, bool *out)
{
    const char *text;
    if (!scalar(r, c, k, &text))
        return false;
    if (strcmp(text, "true") != 0 && strcmp(text, "false") != 0)
        return bad(r, at(c, k), "%s: expected true or false, not '%s'", case_keys[k], text);
    *out = text[0] == 't';
    return true;
}

static bool is_sequence(const runner_t *r, case_t *c, int k)
{
    if (c->value[k] && fy_node_is_sequence(c->value[k]))
        return true;
    return bad(r, at(c, k), "%s: expected a list", case_keys[k]);
}

static bool is_mapping(const runner_t *r, case_t *c, int k)
{
    if (c->value[k] && fy_node_is_mapping(c->value[k]))
        return true;
    return bad(r, at(c, k), "%s: expected a mapping", case_keys[k]);
}

/*  A field path of the report ("subjects.postcode"), or a key inside a map
 *  field ("subjects.identifiers.pnc"). The schema node, or NULL. */
static const cv_schema_node_t *resolve_path(const cv_schema_t *schema, const char *path,
                                            bool *map_key)
{
    *map_key = false;
    int index = cv_schema_find(schema, path);
    if (index >= 0)
        return cv_schema_node(schema, index);
    const char *dot = strrchr(path, '.');
    if (!dot || !dot[1])
        return NULL;
    char *prefix = strndup(path, (size_t)(dot - path));
    if (!prefix)
        abort();
    const cv_schema_node_t *node = cv_schema_node(schema, cv_schema_find(schema, prefix));
    free(prefix);
    *map_key = node && node->is_map;
    return *map_key ? node : NULL;
}

/*  Paths are checked, so that a misspelt `absent:` path cannot pass. A
 *  compared value must be a single leaf: a map needs its key named. */
static bool check_path(const runner_t *r, struct fy_node *at_node, const char *path,
                       bool value_needed)
{
    bool map_key;
    const cv_schema_node_t *node = path ? resolve_path(r->schema, path, &map_key) : NULL;
    if (!node)
        return bad(r, at_node, "unknown field path '%s'", path ? path : "");
    if (value_needed && (!node->is_leaf || (node->is_map && !map_key)))
        return bad(r, at_node, "'%s' is not a single value; name a leaf field%s", path,
                   node->is_map ? " and a key" : "");
    return true;
}

static bool check_path_list(const runner_t *r, case_t *c, int k)
{
    if (!is_sequence(r, c, k))
        return false;
    void *iter = NULL;
    struct fy_node *item;
    while ((item = fy_node_sequence_iterate(c->value[k], &iter)))
        if (!check_path(r, item, text_of(item), false))
            return false;
    return true;
}

static bool valid_regex(const runner_t *r, struct fy_node *node, const char *pattern)
{
    regex_t re;
    int rc = regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        char why[200];
        regerror(rc, &re, why, sizeof why);
        return bad(r, node, "not an extended regular expression: %s", why);
    }
    regfree(&re);
    return true;
}

static bool in_names(const char *const *names, const char *name)
{
    while (*names && strcmp(*names, name) != 0)
        names++;
    return *names != NULL;
}

/*  equals, matches and masked: a mapping of paths to scalars. */
static bool check_path_map(const runner_t *r, case_t *c, int k)
{
    if (!is_mapping(r, c, k))
        return false;
    void *iter = NULL;
    struct fy_node_pair *pair;
    while ((pair = fy_node_mapping_iterate(c->value[k], &iter))) {
        struct fy_node *key = fy_node_pair_key(pair);
        struct fy_node *value = fy_node_pair_value(pair);
        const char *path = text_of(key);
        const char *expected = text_of(value);
        if (!check_path(r, key, path, k != K_MASKED))
            return false;
        if (!expected || is_null(value))
            return bad(r, value ? value : key, "%s.%s: expected a single value", case_keys[k],
                       path);
        /* the engine decides per leaf field, and a map is one leaf */
        const cv_schema_node_t *node = cv_schema_node(r->schema, cv_schema_find(r->schema, path));
        if (k == K_MASKED && (!node || !node->is_leaf))
            return bad(r, key, "masked: '%s' is not a leaf field (a map counts as one)", path);
        if (k == K_MASKED && !in_names(mask_names, expected))
            return bad(r, value,
                       "masked.%s: unknown mask '%s' (year, postcode_district, "
                       "initials, round_1km, pseudonymise)",
                       path, expected);
        if (k == K_MATCHES && !valid_regex(r, value, expected))
            return false;
    }
    return true;
}

/*  An approval names an agency id or an agency type. */
static bool known_approval(const cv_policy_t *policy, const char *who)
{
    for (int i = 0; i < cv_policy_agency_count(policy); i++) {
        const cv_agency_t *agency = cv_policy_agency(policy, i);
        if (strcmp(agency->id, who) == 0 || strcmp(agency->type, who) == 0)
            return true;
    }
    return false;
}

static bool read_approvals(const runner_t *r, case_t *c)
{
    if (!is_sequence(r, c, K_APPROVALS))
        return false;
    int n = fy_node_sequence_item_count(c->value[K_APPROVALS]);
    c->approvals = calloc(n > 0 ? (size_t)n : 1, sizeof *c->approvals);
    if (!c->approvals)
        abort();
    void *iter = NULL;
    struct fy_node *item;
    while ((item = fy_node_sequence_iterate(c->value[K_APPROVALS], &iter))) {
        const char *who = text_of(item);
        if (!who || !known_approval(r->policy, who))
            return bad(r, item, "approvals: '%s' is neither an agency nor an agency type",
                       who ? who : "");
        c->approvals[c->n_approvals++] = who;
    }
    return true;
}

/*  Report paths are relative to the cases file, so the cases run from any
 *  directory. */
static char *report_path(const char *cases_file, const char *path)
{
    const char *slash = strrchr(cases_file, '/');
    char *joined = NULL;
    if (path[0] == '/' || !slash)
        joined = strdup(path);
    else if (asprintf(&joined, "%.*s/%s", (int)(slash - cases_file), cases_file, path) < 0)
        joined = NULL;
    if (!joined)
        abort();
    return joined;
}

static bool read_report(const runner_t *r, case_t *c)
{
    struct fy_node *node = c->value[K_REPORT];
    cv_error_t err;
    ProtobufCMessage *msg = NULL;
    if (node && fy_node_is_mapping(node)) {
        msg = cv_json_from_node(r->schema, node, 0, r->file, &err);
    } else {
        const char *text = text_of(node);
        if (!text || is_null(node))
            return bad(r, at(c, K_REPORT), "report: expected a file name or a mapping");
        char *path = report_path(r->file, text);
        size_t len;
        char *buf =
            r->options->read_file ? r->options->read_file(path, &len) : cv_read_file(path, &len);
        if (!buf) {
            bad(r, node, "report: %s: %s", path, strerror(errno));
            free(path);
            return false;
        }
        msg = cv_json_parse(r->schema, buf, len, path, &err);
        free(buf);
        free(path);
    }
    if (!msg) {
        fprintf(r->options->err, "%s\n", err.msg);
        return false;
    }
    c->report = (Caveat__Report *)msg;
    return true;
}

/*  A refused report or an undelivered one has no view to check. */
static bool check_combination(const runner_t *r, case_t *c)
{
    static const int view_keys[] = {K_FEED,   K_RULES,   K_PRESENT, K_ABSENT,
                                    K_EQUALS, K_MATCHES, K_MASKED};
    if (!c->refused && !c->key[K_TO])
        return bad(r, c->node, "case '%s': missing 'to'", c->name);
    for (int k = 0; k < K_COUNT; k++)
        if (c->refused && c->key[k] && k != K_NAME && k != K_REPORT && k != K_REFUSED &&
            k != K_REASON)
            return bad(r, c->key[k],
                       "%s: a refused report is never decided; only name, "
                       "report and reason apply",
                       case_keys[k]);
    for (size_t i = 0; i < sizeof view_keys / sizeof *view_keys; i++)
        if (!c->delivered && c->key[view_keys[i]])
            return bad(r, c->key[view_keys[i]],
                       "%s: cannot hold for a report that is not "
                       "delivered",
                       case_keys[view_keys[i]]);
    return true;
}

static bool read_keys(const runner_t *r, case_t *c)
{
    void *iter = NULL;
    struct fy_node_pair *pair;
    while ((pair = fy_node_mapping_iterate(c->node, &iter))) {
        struct fy_node *key = fy_node_pair_key(pair);
        const char *name = text_of(key);
        int k = 0;
        while (k < K_COUNT && (!name || strcmp(case_keys[k], name) != 0))
            k++;
        if (k == K_COUNT)
            return bad(r, key, "unknown key '%s' in a case", name ? name : "");
        c->key[k] = key;
        c->value[k] = fy_node_pair_value(pair);
    }
    if (!c->key[K_NAME])
        return bad(r, c->node, "a case needs a name");
    if (!c->key[K_REPORT])
        return bad(r, c->node, "case: missing 'report'");
    return true;
}

static bool unique_name(const runner_t *r, const case_t *c, int index)
{
    for (int i = 0; i < index; i++)
        if (strcmp(r->cases[i].name, c->name) == 0)
            return bad(r, c->value[K_NAME], "name: another case is called '%s'", c->name);
    return true;
}

static bool read_case(const runner_t *r, case_t *c, int index)
{
    c->delivered = true;
    c->recipient = -1;
    const char *to = NULL;
    if (!fy_node_is_mapping(c->node))
        return bad(r, c->node, "cases[%d]: expected a mapping", index);
    if (!read_keys(r, c) || !scalar(r, c, K_NAME, &c->name) || !unique_name(r, c, index))
        return false;
    if (c->key[K_DELIVERED] && !boolean(r, c, K_DELIVERED, &c->delivered))
        return false;
    if (c->key[K_REFUSED] && !boolean(r, c, K_REFUSED, &c->refused))
        return false;
    if (!check_combination(r, c))
        return false;
    if (c->key[K_TO] && !scalar(r, c, K_TO, &to))
        return false;
    if (to && (c->recipient = cv_policy_agency_find(r->policy, to)) < 0)
        return bad(r, at(c, K_TO), "to: '%s' is not an agency of the policy", to);
    const char *text;
    if (c->key[K_APPROVALS] && !read_approvals(r, c))
        return false;
    if (c->key[K_FEED] && !is_null(c->value[K_FEED]) && !scalar(r, c, K_FEED, &text))
        return false;
    if (c->key[K_REASON] && !scalar(r, c, K_REASON, &text))
        return false;
    if (c->key[K_RULES] && !is_sequence(r, c, K_RULES))
        return false;
    for (int k = K_PRESENT; k <= K_ABSENT; k++)
        if (c->key[k] && !check_path_list(r, c, k))
            return false;
    for (int k = K_EQUALS; k <= K_MASKED; k++)
        if (c->key[k] && !check_path_map(r, c, k))
            return false;
    return read_report(r, c);
}

static bool read_cases(runner_t *r, struct fy_document *doc)
{
    struct fy_node *root = fy_document_root(doc);
    if (!root || !fy_node_is_mapping(root))
        return bad(r, root, "expected a mapping with 'cases'");
    void *iter = NULL;
    struct fy_node_pair *pair;
    while ((pair = fy_node_mapping_iterate(root, &iter))) {
        const char *key = text_of(fy_node_pair_key(pair));
        if (!key || strcmp(key, "cases") != 0)
            return bad(r, fy_node_pair_key(pair), "unknown key '%s' (expected 'cases')",
                       key ? key : "");
    }
    struct fy_node *cases = fy_node_mapping_lookup_by_string(root, "cases", FY_NT);
    if (!cases || !fy_node_is_sequence(cases) || fy_node_sequence_item_count(cases) == 0)
        return bad(r, cases ? cases : root, "cases: expected a list of at least one case");
    int n = fy_node_sequence_item_count(cases);
    r->cases = calloc((size_t)n, sizeof *r->cases);
    if (!r->cases)
        abort();
    for (int i = 0; i < n; i++) {
        r->cases[i].node = fy_node_sequence_get_by_index(cases, i);
        r->n_cases = i + 1;
        if (!read_case(r, &r->cases[i], i))
            return false;
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/*  Running a case.                                                         */

typedef struct {
    struct fy_node **items;
    size_t n, cap;
} nodes_t;

static void push(nodes_t *out, struct fy_node *node)
{
    if (out->n == out->cap) {
        out->cap = out->cap ? out->cap * 2 : 8;
        out->items = realloc(out->items, out->cap * sizeof *out->items);
        if (!out->items)
            abort();
    }
    out->items[out->n++] = node;
}

/*  The nodes at a dotted path of the view's JSON, every element of every
 *  list on the way ("subjects.name" is each subject's name). */
static void collect(struct fy_node *node, const char *path, nodes_t *out)
{
    if (!node)
        return;
    if (fy_node_is_sequence(node)) {
        void *iter = NULL;
        struct fy_node *item;
        while ((item = fy_node_sequence_iterate(node, &iter)))
            collect(item, path, out);
        return;
    }
    if (!*path) {
        push(out, node);
        return;
    }
    if (!fy_node_is_mapping(node))
        return;
    const char *dot = strchr(path, '.');
    size_t len = dot ? (size_t)(dot - path) : strlen(path);
    collect(fy_node_mapping_lookup_by_string(node, path, len), dot ? dot + 1 : "", out);
}

static size_t count_at(struct fy_node *view, const char *path)
{
    nodes_t found = {0};
    collect(view, path, &found);
    free(found.items);
    return found.n;
}

static void check_presence(const runner_t *r, case_t *c, struct fy_node *view)
{
    for (int k = K_PRESENT; k <= K_ABSENT; k++) {
        void *iter = NULL;
        struct fy_node *item;
        while (c->key[k] && (item = fy_node_sequence_iterate(c->value[k], &iter))) {
            const char *path = text_of(item);
            size_t n = count_at(view, path);
            if (k == K_PRESENT && n == 0)
                fail(r, c, item, "%s is absent, expected present", path);
            if (k == K_ABSENT && n > 0)
                fail(r, c, item, "%s is present, expected absent", path);
        }
    }
}

/*  equals: every value at the path is the expected text; matches: every
 *  value matches the regular expression. At least one value must exist. */
static void check_values(const runner_t *r, case_t *c, int k, struct fy_node *view)
{
    void *iter = NULL;
    struct fy_node_pair *pair;
    while ((pair = fy_node_mapping_iterate(c->value[k], &iter))) {
        struct fy_node *key = fy_node_pair_key(pair);
        const char *path = text_of(key);
        const char *expected = text_of(fy_node_pair_value(pair));
        regex_t re;
        if (k == K_MATCHES && regcomp(&re, expected, REG_EXTENDED | REG_NOSUB) != 0)
            abort(); /* compiled once already when the case was read */
        nodes_t found = {0};
        collect(view, path, &found);
        if (found.n == 0)
            fail(r, c, key, "%s is absent, expected %s '%s'", path,
                 k == K_EQUALS ? "the value" : "a value matching", expected);
        for (size_t i = 0; i < found.n; i++) {
            const char *got = text_of(found.items[i]);
            bool ok = got && (k == K_EQUALS ? strcmp(got, expected) == 0
                                            : regexec(&re, got, 0, NULL, 0) == 0);
            if (!ok) {
                fail(r, c, key, "%s is '%s', expected %s'%s'", path, got ? got : "(not a value)",
                     k == K_EQUALS ? "" : "a match of ", expected);
                break;
            }
        }
        if (k == K_MATCHES)
            regfree(&re);
        free(found.items);
    }
}

/*  masked: the engine's own account of each field, "mask:NAME". */
static void check_masks(const runner_t *r, case_t *c, const cv_decision_t *decision)
{
    void *iter = NULL;
    struct fy_node_pair *pair;
    while (c->key[K_MASKED] && (pair = fy_node_mapping_iterate(c->value[K_MASKED], &iter))) {
        const char *path = text_of(fy_node_pair_key(pair));
        char wanted[64];
        snprintf(wanted, sizeof wanted, "mask:%s", text_of(fy_node_pair_value(pair)));
        const char *got = NULL;
        for (int i = 0; i < cv_decision_field_count(decision); i++) {
            const cv_field_decision_t *f = cv_decision_field(decision, i);
            if (strcmp(f->path, path) == 0 && (!got || strcmp(f->decision, wanted) != 0))
                got = f->decision;
        }
        if (!got)
            fail(r, c, fy_node_pair_key(pair), "%s is not in the report", path);
        else if (strcmp(got, wanted) != 0)
            fail(r, c, fy_node_pair_key(pair), "%s: decision %s, expected %s", path, got, wanted);
    }
}

static bool in_decision(const cv_decision_t *decision, const char *name)
{
    for (int i = 0; i < cv_decision_entry_count(decision); i++)
        if (strcmp(cv_decision_entry_name(decision, i), name) == 0)
            return true;
    return false;
}

/*  rules: exactly these entries released the report, in any order. */
static void check_rules(const runner_t *r, case_t *c, const cv_decision_t *decision)
{
    struct fy_node *list = c->value[K_RULES];
    void *iter = NULL;
    struct fy_node *item;
    while ((item = fy_node_sequence_iterate(list, &iter)))
        if (!text_of(item) || !in_decision(decision, text_of(item)))
            fail(r, c, item, "not released by '%s'", text_of(item) ? text_of(item) : "");
    for (int i = 0; i < cv_decision_entry_count(decision); i++) {
        const char *name = cv_decision_entry_name(decision, i);
        bool listed = false;
        iter = NULL;
        while (!listed && (item = fy_node_sequence_iterate(list, &iter)))
            listed = text_of(item) && strcmp(text_of(item), name) == 0;
        if (!listed)
            fail(r, c, at(c, K_RULES), "also released by '%s'", name);
    }
}

static void check_feed(const runner_t *r, case_t *c, const cv_decision_t *decision)
{
    const char *want = is_null(c->value[K_FEED]) ? NULL : text_of(c->value[K_FEED]);
    const char *got = cv_decision_feed(decision);
    if ((want == NULL) != (got == NULL) || (want && strcmp(want, got) != 0))
        fail(r, c, at(c, K_FEED), "feed is %s%s%s, expected %s%s%s", got ? "'" : "",
             got ? got : "none", got ? "'" : "", want ? "'" : "", want ? want : "none",
             want ? "'" : "");
}

/*  Joins lines with "; " for a one-line message. */
static char *join_reasons(const cv_decision_t *decision)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    if (!out)
        abort();
    for (int i = 0; i < cv_decision_reason_count(decision); i++)
        fprintf(out, "%s%s", i ? "; " : "", cv_decision_reason(decision, i));
    if (fclose(out) != 0)
        abort();
    return text;
}

static void check_reason(const runner_t *r, case_t *c, const cv_decision_t *decision)
{
    const char *want = text_of(c->value[K_REASON]);
    for (int i = 0; i < cv_decision_reason_count(decision); i++)
        if (strstr(cv_decision_reason(decision, i), want))
            return;
    char *reasons = join_reasons(decision);
    fail(r, c, at(c, K_REASON), "no reason mentions '%s' (reasons: %s)", want,
         *reasons ? reasons : "none");
    free(reasons);
}

/*  The view as a recipient would read it: its JSON, parsed back. */
static struct fy_document *view_document(const Caveat__Report *view)
{
    char *json = cv_json_emit(&view->base, 0);
    if (!json)
        abort();
    struct fy_parse_cfg cfg = {.flags = FYPCF_QUIET | FYPCF_JSON_FORCE};
    struct fy_document *doc = fy_document_build_from_malloc_string(&cfg, json, strlen(json));
    if (!doc)
        abort(); /* our own emitter's output always parses */
    return doc;
}

static void check_view(const runner_t *r, case_t *c, cv_decision_t *decision)
{
    Caveat__Report *view = cv_decision_view(decision, c->report);
    if (!view)
        abort(); /* delivered, so there is a view */
    struct fy_document *doc = view_document(view);
    struct fy_node *root = fy_document_root(doc);
    check_presence(r, c, root);
    if (c->key[K_EQUALS])
        check_values(r, c, K_EQUALS, root);
    if (c->key[K_MATCHES])
        check_values(r, c, K_MATCHES, root);
    check_masks(r, c, decision);
    fy_document_destroy(doc);
    protobuf_c_message_free_unpacked(&view->base, NULL);
}

static void check_refusal(const runner_t *r, case_t *c)
{
    cv_error_t err;
    bool valid = cv_policy_validate_report(r->policy, c->report, &err);
    if (valid && c->refused)
        fail(r, c, at(c, K_REFUSED), "the report was accepted, expected it refused");
    else if (!valid && !c->refused)
        fail(r, c, at(c, K_REPORT), "the report is refused: %s", err.msg);
    else if (!valid && c->key[K_REASON] && !strstr(err.msg, text_of(c->value[K_REASON])))
        fail(r, c, at(c, K_REASON), "refused for '%s', expected a mention of '%s'", err.msg,
             text_of(c->value[K_REASON]));
}

/*  What coverage counts: the policy's entries, then its restrictions. */
static int item_count(const runner_t *r)
{
    return cv_policy_entry_count(r->policy) + cv_policy_restriction_count(r->policy);
}

static bool item_is_restriction(const runner_t *r, int item)
{
    return item >= cv_policy_entry_count(r->policy);
}

static const char *item_kind(const runner_t *r, int item)
{
    return item_is_restriction(r, item) ? "restriction" : cv_policy_entry_kind(r->policy, item);
}

static const char *item_name(const runner_t *r, int item)
{
    int entries = cv_policy_entry_count(r->policy);
    return item < entries ? cv_policy_entry_name(r->policy, item)
                          : cv_policy_restriction_name(r->policy, item - entries);
}

/*  Coverage: the entries the decision names were exercised, and the
 *  restrictions that capped one of its fields. */
static void mark_exercised(const runner_t *r, const cv_decision_t *decision)
{
    int entries = cv_policy_entry_count(r->policy);
    for (int i = 0; i < cv_decision_entry_count(decision); i++) {
        const char *name = cv_decision_entry_name(decision, i);
        for (int e = 0; e < entries; e++)
            if (strcmp(cv_policy_entry_name(r->policy, e), name) == 0)
                r->exercised[e] = true;
    }
    for (int i = 0; i < cv_decision_field_count(decision); i++) {
        const char *restriction = cv_decision_field(decision, i)->restriction;
        for (int x = entries; restriction && x < item_count(r); x++)
            if (strcmp(item_name(r, x), restriction) == 0)
                r->exercised[x] = true;
    }
}

static void run_case(const runner_t *r, case_t *c, cv_decision_t *decision)
{
    check_refusal(r, c);
    if (c->failed || c->refused)
        return;
    cv_approvals_t approvals = {c->approvals, c->n_approvals};
    bool delivered = cv_policy_decide(r->policy, c->report, c->recipient,
                                      c->key[K_APPROVALS] ? &approvals : NULL, decision);
    if (delivered != c->delivered) {
        mark_exercised(r, decision);
        char *reasons = join_reasons(decision);
        if (delivered)
            fail(r, c, at(c, c->key[K_DELIVERED] ? K_DELIVERED : K_TO),
                 "delivered, expected not delivered");
        else
            fail(r, c, at(c, c->key[K_DELIVERED] ? K_DELIVERED : K_TO),
                 "not delivered, expected delivered (%s)", reasons);
        free(reasons);
        return;
    }
    if (delivered) {
        if (c->key[K_FEED])
            check_feed(r, c, decision);
        if (c->key[K_RULES])
            check_rules(r, c, decision);
        check_view(r, c, decision); /* builds the view that reasons may cite */
    }
    mark_exercised(r, decision); /* after the view: its fields name the restrictions */
    if (c->key[K_REASON])
        check_reason(r, c, decision);
}

/* ------------------------------------------------------------------------ */

/* ------------------------------------------------------------------------ */
/*  Reports.                                                                */

/*  The coverage items from from to to (not included) that no case
 *  exercised. */
static int count_unexercised(const runner_t *r, int from, int to)
{
    int n = 0;
    for (int i = from; i < to; i++)
        n += !r->exercised[i];
    return n;
}

static void report_text(const runner_t *r, int failed)
{
    FILE *out = r->options->out;
    fprintf(out, "%d passed, %d failed\n", r->n_cases - failed, failed);
    if (!r->options->coverage)
        return;
    int entries = cv_policy_entry_count(r->policy), items = item_count(r);
    fprintf(out, "coverage: %d of %d entries exercised\n",
            entries - count_unexercised(r, 0, entries), entries);
    if (items > entries)
        fprintf(out, "coverage: %d of %d restrictions exercised\n",
                items - entries - count_unexercised(r, entries, items), items - entries);
    for (int i = 0; i < items; i++)
        if (!r->exercised[i])
            fprintf(out, "not exercised: %s '%s'\n", item_kind(r, i), item_name(r, i));
}

static void json_count(cv_json_writer_t *out, const char *key, int count)
{
    cv_json_key(out, key);
    cv_json_uint(out, (uint64_t)count);
}

static void json_coverage(const runner_t *r, cv_json_writer_t *out)
{
    int entries = cv_policy_entry_count(r->policy), items = item_count(r);
    cv_json_key(out, "coverage");
    cv_json_object_begin(out);
    json_count(out, "entries", entries);
    json_count(out, "exercised", entries - count_unexercised(r, 0, entries));
    json_count(out, "restrictions", items - entries);
    json_count(out, "restrictions_exercised",
               items - entries - count_unexercised(r, entries, items));
    cv_json_key(out, "not_exercised");
    cv_json_array_begin(out);
    for (int i = 0; i < items; i++) {
        if (r->exercised[i])
            continue;
        cv_json_object_begin(out);
        cv_json_key(out, "kind");
        cv_json_string(out, item_kind(r, i));
        cv_json_key(out, "name");
        cv_json_string(out, item_name(r, i));
        cv_json_object_end(out);
    }
    cv_json_array_end(out);
    cv_json_object_end(out);
}

/*  {"file", "passed", "failed", "cases": [{"name", "passed", "failures":
 *  ["FILE:LINE:COL: what"]}], "coverage": {...} with coverage}          */
static void report_json(const runner_t *r, int failed)
{
    cv_json_writer_t *out = cv_json_writer_new(0);
    if (!out)
        abort();
    cv_json_object_begin(out);
    cv_json_key(out, "file");
    cv_json_string(out, r->file);
    json_count(out, "passed", r->n_cases - failed);
    json_count(out, "failed", failed);
    cv_json_key(out, "cases");
    cv_json_array_begin(out);
    for (int i = 0; i < r->n_cases; i++) {
        const case_t *c = &r->cases[i];
        cv_json_object_begin(out);
        cv_json_key(out, "name");
        cv_json_string(out, c->name);
        cv_json_key(out, "passed");
        cv_json_bool(out, !c->failed);
        cv_json_key(out, "failures");
        cv_json_array_begin(out);
        for (int f = 0; f < c->n_failures; f++)
            cv_json_string(out, c->failures[f]);
        cv_json_array_end(out);
        cv_json_object_end(out);
    }
    cv_json_array_end(out);
    if (r->options->coverage)
        json_coverage(r, out);
    cv_json_object_end(out);
    const char *text = cv_json_writer_text(out);
    if (!text)
        abort();
    fprintf(r->options->out, "%s\n", text);
    cv_json_writer_destroy(&out);
}

/*  One testsuite, one testcase per case; a failing case's failure carries
 *  its first message as the message and all of them as the text. With
 *  coverage, the entries no case exercises go in the suite's system-out. */
static void report_junit(const runner_t *r, int failed)
{
    FILE *out = r->options->out;
    fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites tests=\"", out);
    fprintf(out, "%d\" failures=\"%d\">\n  <testsuite name=\"", r->n_cases, failed);
    cv_xml_text(out, r->file);
    fprintf(out, "\" tests=\"%d\" failures=\"%d\" errors=\"0\">\n", r->n_cases, failed);
    for (int i = 0; i < r->n_cases; i++) {
        const case_t *c = &r->cases[i];
        fputs("    <testcase classname=\"policy\" name=\"", out);
        cv_xml_text(out, c->name);
        if (!c->failed) {
            fputs("\"/>\n", out);
            continue;
        }
        fputs("\">\n      <failure message=\"", out);
        cv_xml_text(out, c->failures[0]);
        fputs("\">", out);
        for (int f = 0; f < c->n_failures; f++) {
            cv_xml_text(out, c->failures[f]);
            fputc('\n', out);
        }
        fputs("</failure>\n    </testcase>\n", out);
    }
    if (r->options->coverage && count_unexercised(r, 0, item_count(r))) {
        fputs("    <system-out>", out);
        for (int i = 0; i < item_count(r); i++)
            if (!r->exercised[i]) {
                fprintf(out, "not exercised: %s '", item_kind(r, i));
                cv_xml_text(out, item_name(r, i));
                fputs("'\n", out);
            }
        fputs("</system-out>\n", out);
    }
    fputs("  </testsuite>\n</testsuites>\n", out);
}

/* ------------------------------------------------------------------------ */

/*  The document refers to text, so the caller frees text after it. */
static struct fy_document *parse_cases(const runner_t *r, const char *text, size_t len)
{
    /* libfyaml 0.7 loops forever on some invalid bytes and stops silently
     * at others, running only the cases before them */
    int line, col;
    cv_error_t err;
    const char *bad = cv_text_check(text, len, &line, &col);
    if (bad) {
        cv_error_set(&err, r->file, line, col, "%s", bad);
        fprintf(r->options->err, "%s\n", err.msg);
        return NULL;
    }
    struct fy_diag *diag = cv_diag_collecting();
    /* resolving lets a case reuse another's inline report (&anchor,
     * *alias) or vary it with a merge key (<<: *alias) */
    struct fy_parse_cfg cfg = {
        .flags = FYPCF_QUIET | FYPCF_COLLECT_DIAG | FYPCF_RESOLVE_DOCUMENT,
        .diag = diag,
    };
    struct fy_document *doc = fy_document_build_from_string(&cfg, text, len);
    if (!doc) {
        void *iter = NULL;
        struct fy_diag_error *e = diag ? fy_diag_errors_iterate(diag, &iter) : NULL;
        /* libfyaml 0.7's collected errors are 1-based already */
        cv_error_set(&err, r->file, e ? e->line : 0, e ? e->column : 0, "%s",
                     e ? e->msg : "not a YAML document");
        fprintf(r->options->err, "%s\n", err.msg);
    }
    if (diag)
        fy_diag_destroy(diag);
    return doc;
}

static void free_cases(runner_t *r)
{
    for (int i = 0; i < r->n_cases; i++) {
        if (r->cases[i].report)
            protobuf_c_message_free_unpacked(&r->cases[i].report->base, NULL);
        free(r->cases[i].approvals);
        for (int f = 0; f < r->cases[i].n_failures; f++)
            free(r->cases[i].failures[f]);
        free(r->cases[i].failures);
    }
    free(r->cases);
    free(r->exercised);
}

static int run(runner_t *r)
{
    cv_decision_t *decision = cv_decision_new();
    r->exercised = calloc((size_t)item_count(r) + 1, sizeof *r->exercised);
    if (!decision || !r->exercised)
        abort();
    int failed = 0;
    for (int i = 0; i < r->n_cases; i++) {
        run_case(r, &r->cases[i], decision);
        failed += r->cases[i].failed;
        if (r->options->verbose && !r->cases[i].failed && r->options->format == CV_CASES_TEXT)
            fprintf(r->options->out, "PASS %s\n", r->cases[i].name);
    }
    cv_decision_destroy(&decision);
    if (r->options->format == CV_CASES_JSON)
        report_json(r, failed);
    else if (r->options->format == CV_CASES_JUNIT)
        report_junit(r, failed);
    else
        report_text(r, failed);
    return failed ? CV_CASES_FAILED : CV_CASES_PASSED;
}

int cv_cases_run(const cv_policy_t *policy, const char *text, size_t len, const char *file,
                 const cv_cases_options_t *options)
{
    runner_t r = {.file = file, .options = options, .policy = policy, .schema = cv_schema_report()};
    struct fy_document *doc = parse_cases(&r, text, len);
    int status = CV_CASES_BAD_INPUT;
    if (doc && read_cases(&r, doc))
        status = run(&r);
    free_cases(&r);
    fy_document_destroy(doc);
    return status;
}
