/*  caveat audit sample: a dip sample of accepted reports for a reviewer,
 *  each with who was given which fields under which rule, at acceptance
 *  and by each approval the log records up to the seed.
 *
 *  The sample is drawn from the leaves a signed checkpoint covers, ranked
 *  by SHA-256(checkpoint root || leaf index as 8 bytes big-endian): the
 *  COUNT matching leaves of smallest rank. Whoever holds the same
 *  checkpoint draws the same sample, and nobody who wrote the leaves
 *  could choose which ones would be drawn, since the root depends on all
 *  of them. Only the leaves that could still enter the sample are parsed.
 */
#include <czmq.h>
#include <inttypes.h>
#include <libfyaml.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_leaf_print.h"
#include "audit_leaves.h"
#include "cli.h"

#define SAMPLE_MAX 10000 /* reports in one sample: a reviewer reads them all */

static const char usage[] = "usage: caveat audit sample DIR --count N [--since DATE] "
                            "[--category C] [--seed SIZE] [--key VERIFIER-KEY] "
                            "[--format text|json]";

/*  A leaf kept: its bytes, NUL-terminated. */
typedef struct {
    uint64_t index;
    char *data;
    size_t len;
} kept_t;

typedef struct {
    uint8_t rank[crypto_hash_sha256_BYTES];
    uint64_t index;
    char *data; /* the leaf's bytes, NUL-terminated */
    size_t len;
    kept_t *approvals; /* the approval leaves of its report, in the log's order */
    size_t n_approvals;
} pick_t;

typedef struct {
    const cv_checkpoint_t *seed;
    uint64_t since_ms;
    const char *category; /* NULL: any */
    pick_t *picks;        /* by rank, ascending */
    size_t count, n;
    /* every leaf read, hashed: the draw stands only if they are the tree
     * the seed signs (whoever edits the store could otherwise choose the
     * leaves a sample draws from) */
    cv_frontier_t leaves;
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

static char *copy_of(const void *data, size_t len)
{
    char *copy = malloc(len + 1);
    if (!copy)
        abort();
    memcpy(copy, data, len);
    copy[len] = '\0';
    return copy;
}

/*  Into the sample, in rank order, when it ranks among the count best. */
static bool consider(void *arg, uint64_t index, const void *data, size_t len)
{
    sampler_t *s = arg;
    if (index != s->leaves.size)
        return false; /* a leaf missing: the tree is not the seed's (draw says so) */
    cv_hash_t hash;
    cv_merkle_leaf_hash(data, len, &hash);
    cv_frontier_append(&s->leaves, &hash);
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
    pick.data = copy_of(data, len);
    s->picks[at] = pick;
    s->n++;
    return true;
}

/*  An approval leaf, to the pick of the report it names. */
static bool attach(void *arg, uint64_t index, const void *data, size_t len)
{
    zhashx_t *picks = arg;
    uint64_t time_ms;
    if (!audit_leaf_approval(data, len, &time_ms))
        return true;
    struct fy_document *doc = audit_leaf_parse(data, len);
    char *key = doc ? audit_leaf_report_key(fy_document_root(doc)) : NULL;
    pick_t *pick = key ? zhashx_lookup(picks, key) : NULL;
    if (pick) {
        pick->approvals =
            realloc(pick->approvals, (pick->n_approvals + 1) * sizeof *pick->approvals);
        if (!pick->approvals)
            abort();
        pick->approvals[pick->n_approvals++] =
            (kept_t){.index = index, .data = copy_of(data, len), .len = len};
    }
    free(key);
    fy_document_destroy(doc);
    return true;
}

/*  The approval leaves of the sampled reports, up to the seed's size:
 *  each release by approval is shown with the report it released. */
static bool attach_approvals(sqlite3 *db, sampler_t *s, cv_error_t *err)
{
    zhashx_t *picks = zhashx_new();
    if (!picks)
        abort();
    for (size_t i = 0; i < s->n; i++) {
        struct fy_document *doc = audit_leaf_parse(s->picks[i].data, s->picks[i].len);
        char *key = doc ? audit_leaf_report_key(fy_document_root(doc)) : NULL;
        if (key)
            zhashx_insert(picks, key, &s->picks[i]); /* one report sampled twice: the first */
        free(key);
        fy_document_destroy(doc);
    }
    bool ok = zhashx_size(picks) == 0 || audit_leaves_each(db, s->seed->size, attach, picks, err);
    zhashx_destroy(&picks);
    return ok;
}

static int by_index(const void *a, const void *b)
{
    const pick_t *x = a, *y = b;
    return x->index < y->index ? -1 : x->index > y->index;
}

static void print_text(const sampler_t *s, const char *root, const char *rerun)
{
    printf("sample of %zu accepted report%s (of %zu asked) from leaves 0 to %" PRIu64
           ", seeded by the checkpoint of %s at size %" PRIu64 ", root %s\n",
           s->n, s->n == 1 ? "" : "s", s->count, s->seed->size - 1, s->seed->origin, s->seed->size,
           root);
    printf("the same sample again: caveat audit sample DIR %s\n", rerun);
    for (size_t i = 0; i < s->n; i++) {
        const pick_t *p = &s->picks[i];
        audit_leaf_print(stdout, p->index, p->data, p->len);
        for (size_t j = 0; j < p->n_approvals; j++)
            audit_leaf_print_approval(stdout, p->approvals[j].index, p->approvals[j].data,
                                      p->approvals[j].len);
    }
}

/*  False when the writer failed: a leaf nested deeper than it goes (an
 *  edited leaf can be), or memory ran out. */
static bool print_json(const sampler_t *s, const char *root)
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
        const pick_t *p = &s->picks[i];
        cv_json_object_begin(w);
        audit_leaf_json_members(w, p->index, p->data, p->len);
        cv_json_key(w, "approvals");
        cv_json_array_begin(w);
        for (size_t j = 0; j < p->n_approvals; j++)
            audit_leaf_write_json(w, p->approvals[j].index, p->approvals[j].data,
                                  p->approvals[j].len);
        cv_json_array_end(w);
        cv_json_object_end(w);
    }
    cv_json_array_end(w);
    cv_json_object_end(w);
    const char *text = cv_json_writer_text(w);
    if (text)
        printf("%s\n", text);
    cv_json_writer_destroy(&w);
    return text != NULL;
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
    cv_frontier_init(&s->leaves);
    bool read = audit_leaves_each(db, s->seed->size, consider, s, &err);
    cv_hash_t drawn_from;
    cv_frontier_root(&s->leaves, &drawn_from);
    if (read && (s->leaves.size != s->seed->size || !cv_hash_equal(&drawn_from, &s->seed->root)))
        return cli_error(CLI_FAILED,
                         "%s: the leaves are not the tree the seed checkpoint of %" PRIu64
                         " leaves signs: nothing drawn (caveat audit verify names the first bad "
                         "leaf)",
                         dir, s->seed->size);
    if (!read || !attach_approvals(db, s, &err))
        return cli_error(CLI_FAILED, "%s: %s", dir, err.msg);
    cv_audit_end_read(db);
    qsort(s->picks, s->n, sizeof *s->picks, by_index);
    char root[sodium_base64_ENCODED_LEN(CV_HASH_BYTES, sodium_base64_VARIANT_ORIGINAL)];
    sodium_bin2base64(root, sizeof root, s->seed->root.bytes, CV_HASH_BYTES,
                      sodium_base64_VARIANT_ORIGINAL);
    if (o->format && strcmp(o->format, "json") == 0)
        return print_json(s, root)
                   ? CLI_OK
                   : cli_error(CLI_FAILED,
                               "%s: a sampled leaf cannot be written as JSON (nested "
                               "too deep, or out of memory)",
                               dir);
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
    /* on stderr: --format json's output stays JSON */
    if (status == CLI_OK && !options.key)
        fprintf(stderr, "caveat: note: checked against DIR/audit.key, which whoever could edit "
                        "the store could replace; --key KEY checks against yours\n");
    if (status == CLI_OK && !seed_size)
        fprintf(stderr, "caveat: note: seeded by the store's last checkpoint, which whoever could "
                        "edit the store could choose (by deleting the checkpoints after it); "
                        "--seed SIZE of a checkpoint you kept draws what they cannot choose\n");
    sampler.seed = &seed;
    sampler.picks = calloc(sampler.count + 1, sizeof *sampler.picks);
    if (status == CLI_OK)
        status = draw(db, argv[1], &sampler, &options);
    for (size_t i = 0; i < sampler.n; i++) {
        for (size_t j = 0; j < sampler.picks[i].n_approvals; j++)
            free(sampler.picks[i].approvals[j].data);
        free(sampler.picks[i].approvals);
        free(sampler.picks[i].data);
    }
    free(sampler.picks);
    sqlite3_close(db);
    return status;
}
