/*  caveat audit sample: a dip sample of accepted reports for a reviewer,
 *  each with who was given which fields under which rule.
 *
 *  The sample is drawn from the leaves a signed checkpoint covers, ranked
 *  by SHA-256(checkpoint root || leaf index as 8 bytes big-endian): the
 *  COUNT matching leaves of smallest rank. Whoever holds the same
 *  checkpoint draws the same sample, and nobody who wrote the leaves
 *  could choose which ones would be drawn, since the root depends on all
 *  of them. Only the leaves that could still enter the sample are parsed.
 */
#include <inttypes.h>
#include <libfyaml.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit_leaves.h"
#include "cli.h"

#define SAMPLE_MAX 10000 /* reports in one sample: a reviewer reads them all */

static const char usage[] = "usage: caveat audit sample DIR --count N [--since DATE] "
                            "[--category C] [--seed SIZE] [--key VERIFIER-KEY] "
                            "[--format text|json]";

typedef struct {
    uint8_t rank[crypto_hash_sha256_BYTES];
    uint64_t index;
    char *data; /* the leaf's bytes, NUL-terminated */
    size_t len;
} pick_t;

typedef struct {
    const cv_checkpoint_t *seed;
    uint64_t since_ms;
    const char *category; /* NULL: any */
    pick_t *picks;        /* by rank, ascending */
    size_t count, n;
} sampler_t;

static void rank_of(const cv_checkpoint_t *seed, uint64_t index, uint8_t *rank)
{
    uint8_t input[CV_HASH_BYTES + 8];
    memcpy(input, seed->root.bytes, CV_HASH_BYTES);
    for (int i = 0; i < 8; i++)
        input[CV_HASH_BYTES + i] = (uint8_t)(index >> (56 - 8 * i));
    crypto_hash_sha256(rank, input, sizeof input);
}

static bool category_matches(const sampler_t *s, const void *data, size_t len)
{
    if (!s->category)
        return true;
    struct fy_document *doc = audit_leaf_parse(data, len);
    const char *category = doc ? audit_leaf_text(fy_document_root(doc), "category") : NULL;
    bool match = category && strcmp(category, s->category) == 0;
    fy_document_destroy(doc);
    return match;
}

/*  Into the sample, in rank order, when it ranks among the count best. */
static bool consider(void *arg, uint64_t index, const void *data, size_t len)
{
    sampler_t *s = arg;
    uint64_t time_ms;
    if (!audit_leaf_accepted(data, len, &time_ms) || time_ms < s->since_ms)
        return true;
    pick_t pick = {.index = index, .len = len};
    rank_of(s->seed, index, pick.rank);
    size_t at = s->n;
    while (at > 0 && memcmp(pick.rank, s->picks[at - 1].rank, sizeof pick.rank) < 0)
        at--;
    if (at == s->count || !category_matches(s, data, len))
        return true;
    if (s->n == s->count)
        free(s->picks[--s->n].data);
    memmove(&s->picks[at + 1], &s->picks[at], (s->n - at) * sizeof *s->picks);
    pick.data = malloc(len + 1);
    if (!pick.data)
        abort();
    memcpy(pick.data, data, len);
    pick.data[len] = '\0';
    s->picks[at] = pick;
    s->n++;
    return true;
}

static int by_index(const void *a, const void *b)
{
    const pick_t *x = a, *y = b;
    return x->index < y->index ? -1 : x->index > y->index;
}

/*  The fields whose outcome is outcome, as "label: a, b"; nothing when
 *  there are none. */
static void print_fields(const char *label, struct fy_node *fields, const char **outcomes, int n,
                         const char *outcome)
{
    const char *sep = " ";
    for (int i = 0; i < n; i++) {
        if (outcomes[i] != outcome && (!outcome || !outcomes[i] || strcmp(outcomes[i], outcome)))
            continue;
        if (*sep == ' ')
            printf("    %s:", label);
        printf("%s%s", sep, fy_node_get_scalar0(fy_node_sequence_get_by_index(fields, i)));
        sep = ", ";
    }
    if (*sep == ',')
        printf("\n");
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

/*  The fields a recipient was given, from the leaf's fields and the
 *  recipient's view of them: those the view does not name are shared. */
static void print_view(struct fy_node *leaf, struct fy_node *recipient)
{
    const char *which = audit_leaf_text(recipient, "view");
    char path[48];
    snprintf(path, sizeof path, "/views/%s", which ? which : "");
    struct fy_node *view = which ? fy_node_by_path(leaf, path, FY_NT, FYNWF_DONT_FOLLOW) : NULL;
    struct fy_node *fields = fy_node_mapping_lookup_by_string(leaf, "fields", FY_NT);
    int n = fields && fy_node_is_sequence(fields) ? fy_node_sequence_item_count(fields) : 0;
    if (view && fy_node_is_mapping(view) && !fields) { /* the leaf lists none: all shared */
        printf("    shared: every field of the report as stored\n");
        return;
    }
    if (!view || !fy_node_is_mapping(view) || n == 0) {
        printf("    (the envelope alone)\n");
        return;
    }
    const char **outcomes = calloc((size_t)n, sizeof *outcomes);
    struct fy_node *masked = fy_node_mapping_lookup_by_string(view, "masked", FY_NT);
    void *iter = NULL;
    struct fy_node_pair *pair;
    while (masked && fy_node_is_mapping(masked) && (pair = fy_node_mapping_iterate(masked, &iter)))
        mark(fy_node_pair_value(pair), outcomes, n, fy_node_get_scalar0(fy_node_pair_key(pair)));
    mark(fy_node_mapping_lookup_by_string(view, "withheld", FY_NT), outcomes, n, "withheld");
    print_fields("shared", fields, outcomes, n, NULL);
    iter = NULL;
    while (masked && fy_node_is_mapping(masked) &&
           (pair = fy_node_mapping_iterate(masked, &iter))) {
        const char *name = fy_node_get_scalar0(fy_node_pair_key(pair));
        char label[160];
        snprintf(label, sizeof label, "masked (%s)", name);
        print_fields(label, fields, outcomes, n, name);
    }
    print_fields("withheld", fields, outcomes, n, "withheld");
    free(outcomes);
}

static void print_strings(struct fy_node *list, const char *sep)
{
    void *iter = NULL;
    struct fy_node *item;
    const char *between = "";
    while (list && fy_node_is_sequence(list) && (item = fy_node_sequence_iterate(list, &iter))) {
        printf("%s%s", between, fy_node_get_scalar0(item));
        between = sep;
    }
}

static void print_recipient(struct fy_node *leaf, struct fy_node *to)
{
    const char *organisation = audit_leaf_text(to, "organisation");
    printf("  %s", audit_leaf_text(to, "agency") ? audit_leaf_text(to, "agency") : "?");
    if (organisation)
        printf(" (%s)", organisation);
    if (!audit_leaf_true(to, "delivered")) {
        printf(": not delivered: ");
        print_strings(fy_node_mapping_lookup_by_string(to, "reasons", FY_NT), "; ");
        printf("\n");
        return;
    }
    printf(": delivered under ");
    print_strings(fy_node_mapping_lookup_by_string(to, "rules", FY_NT), ", ");
    if (audit_leaf_text(to, "feed"))
        printf(" (feed %s)", audit_leaf_text(to, "feed"));
    printf("\n");
    print_view(leaf, to);
}

static void print_pick(const pick_t *pick)
{
    struct fy_document *doc = audit_leaf_parse(pick->data, pick->len);
    struct fy_node *leaf = doc ? fy_document_root(doc) : NULL;
    if (!leaf) {
        printf("\nleaf %" PRIu64 " (not JSON): %s\n", pick->index, pick->data);
        return;
    }
    uint64_t ms = 0;
    audit_leaf_accepted(pick->data, pick->len, &ms);
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char when[32];
    gmtime_r(&t, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    printf("\nleaf %" PRIu64 ", %s: report %s of %s, category %s", pick->index, when,
           audit_leaf_text(leaf, "report"), audit_leaf_text(leaf, "originator"),
           audit_leaf_text(leaf, "category"));
    struct fy_node *policy = fy_node_mapping_lookup_by_string(leaf, "policy", FY_NT);
    if (policy)
        printf(", policy %s version %s", audit_leaf_text(policy, "protocol"),
               audit_leaf_text(policy, "version"));
    printf("\n");
    struct fy_node *to = fy_node_mapping_lookup_by_string(leaf, "to", FY_NT), *item;
    void *iter = NULL;
    while (to && fy_node_is_sequence(to) && (item = fy_node_sequence_iterate(to, &iter)))
        if (fy_node_is_mapping(item))
            print_recipient(leaf, item);
    fy_document_destroy(doc);
}

static void print_text(const sampler_t *s, const char *root, const char *rerun)
{
    printf("sample of %zu accepted report%s (of %zu asked) from leaves 0 to %" PRIu64
           ", seeded by the checkpoint of %s at size %" PRIu64 ", root %s\n",
           s->n, s->n == 1 ? "" : "s", s->count, s->seed->size - 1, s->seed->origin, s->seed->size,
           root);
    printf("the same sample again: caveat audit sample DIR %s\n", rerun);
    for (size_t i = 0; i < s->n; i++)
        print_pick(&s->picks[i]);
}

static void print_json(const sampler_t *s, const char *root)
{
    cv_json_writer_t *w = cv_json_writer_new(CV_JSON_PRETTY);
    cv_json_object_begin(w);
    cv_json_key(w, "seed");
    cv_json_object_begin(w);
    cv_json_key(w, "origin");
    cv_json_string(w, s->seed->origin);
    cv_json_key(w, "size");
    cv_json_uint(w, s->seed->size);
    cv_json_key(w, "root");
    cv_json_string(w, root);
    cv_json_object_end(w);
    cv_json_key(w, "count");
    cv_json_uint(w, s->count);
    cv_json_key(w, "sample");
    cv_json_array_begin(w);
    for (size_t i = 0; i < s->n; i++) {
        struct fy_document *doc = audit_leaf_parse(s->picks[i].data, s->picks[i].len);
        cv_json_object_begin(w);
        cv_json_key(w, "index");
        cv_json_uint(w, s->picks[i].index);
        cv_json_key(w, "leaf");
        if (doc)
            audit_node_json(w, fy_document_root(doc));
        else
            cv_json_string(w, s->picks[i].data);
        cv_json_object_end(w);
        fy_document_destroy(doc);
    }
    cv_json_array_end(w);
    cv_json_object_end(w);
    printf("%s\n", cv_json_writer_text(w));
    cv_json_writer_destroy(&w);
}

typedef struct {
    const char *count, *since, *category, *seed, *key, *format;
} options_t;

static int take_options(int *argc, char **argv, options_t *o, sampler_t *s, uint64_t *seed_size)
{
    bool missing = false;
    o->count = cli_take_option(argc, argv, "--count", &missing);
    o->since = cli_take_option(argc, argv, "--since", &missing);
    o->category = cli_take_option(argc, argv, "--category", &missing);
    o->seed = cli_take_option(argc, argv, "--seed", &missing);
    o->key = cli_take_option(argc, argv, "--key", &missing);
    o->format = cli_take_option(argc, argv, "--format", &missing);
    if (*argc != 2 || missing || !o->count)
        return cli_error(CLI_USAGE, "%s", usage);
    uint64_t count = 0;
    if (!audit_parse_count(o->count, &count) || count == 0 || count > SAMPLE_MAX)
        return cli_error(CLI_USAGE, "--count %s: not a number from 1 to %d", o->count, SAMPLE_MAX);
    s->count = (size_t)count;
    if (o->since && !audit_parse_since(o->since, &s->since_ms))
        return cli_error(CLI_USAGE, "--since %s: not a date (YYYY-MM-DD) or RFC 3339 time",
                         o->since);
    if (o->seed && (!audit_parse_count(o->seed, seed_size) || *seed_size == 0))
        return cli_error(CLI_USAGE, "--seed %s: not a checkpoint's size", o->seed);
    if (o->format && strcmp(o->format, "text") != 0 && strcmp(o->format, "json") != 0)
        return cli_error(CLI_USAGE, "--format %s: text or json", o->format);
    s->category = o->category;
    return CLI_OK;
}

static int draw(sqlite3 *db, const char *dir, sampler_t *s, const options_t *o)
{
    cv_error_t err = {0};
    if (!audit_leaves_each(db, s->seed->size, consider, s, &err))
        return cli_error(CLI_FAILED, "%s: %s", dir, err.msg);
    qsort(s->picks, s->n, sizeof *s->picks, by_index);
    char root[sodium_base64_ENCODED_LEN(CV_HASH_BYTES, sodium_base64_VARIANT_ORIGINAL)];
    sodium_bin2base64(root, sizeof root, s->seed->root.bytes, CV_HASH_BYTES,
                      sodium_base64_VARIANT_ORIGINAL);
    if (o->format && strcmp(o->format, "json") == 0) {
        print_json(s, root);
        return CLI_OK;
    }
    char rerun[1024];
    snprintf(rerun, sizeof rerun, "--count %zu --seed %" PRIu64 "%s%s%s%s", s->count, s->seed->size,
             o->since ? " --since " : "", o->since ? o->since : "",
             o->category ? " --category " : "", o->category ? o->category : "");
    print_text(s, root, rerun);
    return CLI_OK;
}

int cmd_audit_sample(int argc, char **argv)
{
    options_t options = {0};
    sampler_t sampler = {0};
    uint64_t seed_size = 0;
    int status = take_options(&argc, argv, &options, &sampler, &seed_size);
    cv_note_verifier_t verifier;
    if (status != CLI_OK)
        return status;
    if (!audit_load_verifier(argv[1], options.key, &verifier))
        return CLI_USAGE;
    cv_error_t err = {0};
    sqlite3 *db = cv_audit_open_readonly(argv[1], &err);
    if (!db)
        return cli_error(CLI_USAGE, "%s", err.msg);
    cv_checkpoint_t seed;
    status = audit_seed_checkpoint(db, argv[1], seed_size, &verifier, &seed);
    sampler.seed = &seed;
    sampler.picks = calloc(sampler.count + 1, sizeof *sampler.picks);
    if (status == CLI_OK)
        status = draw(db, argv[1], &sampler, &options);
    for (size_t i = 0; i < sampler.n; i++)
        free(sampler.picks[i].data);
    free(sampler.picks);
    sqlite3_close(db);
    return status;
}
