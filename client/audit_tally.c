/*  audit_tally.c: see audit_tally.h. */
#include <czmq.h>
#include <inttypes.h>
#include <libfyaml.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "audit_leaf_print.h"
#include "audit_tally.h"
#include "cv_proto.h"
#include "leaf_json.h"

typedef struct {
    char *category, *organisation;
    uint64_t reports;
} cell_t;

/*  Everything a leaf names is looked up or sorted, never searched for
 *  along a list: a leaf may name 40,000 organisations, and searching the
 *  others for each made a summary of that one leaf take 8 s (14 s with its
 *  chart). */
struct audit_tally_t {
    uint64_t since_ms;
    uint64_t accepted, shared; /* reports, and those delivered to someone */
    cell_t **cells;
    size_t n, cap;
    zhashx_t *cell_of; /* each of cells, by cell_key(category, organisation) */
    const char **seen; /* the organisations the current report was delivered to */
    size_t n_seen, cap_seen;
    bool sorted; /* cells by category, then organisation */
    /*  The reports an approval leaf names (audit_tally_expect), by
     *  audit_leaf_report_key: what their accepted leaf and earlier approvals said,
     *  so that an approval counts only organisations that had not had the
     *  report. Only those reports: a log of millions of reports has few
     *  approved, and keeping every report's would cost memory for all. */
    zhashx_t *approved;
    zhashx_t *given;         /* cell_key(the report key, organisation), for those reports */
    zhashx_t *organisations; /* by cell_key(the report key, agency), as their accepted leaf named */
};

/*  What the log said so far of a report an approval names. */
typedef struct {
    char *category; /* from its accepted leaf; NULL: not seen */
    bool shared;    /* counted in "shared" already */
} approved_t;

/*  Keys hashed with SipHash under a key of the process's own: the names
 *  come from leaves anyone who can edit the store writes, and names chosen
 *  to collide under czmq's default hash would make each lookup walk all of
 *  them. */
static uint8_t hash_key[crypto_shorthash_KEYBYTES];
static pthread_once_t hash_key_made = PTHREAD_ONCE_INIT;

static void make_hash_key(void)
{
    if (sodium_init() < 0)
        abort();
    randombytes_buf(hash_key, sizeof hash_key);
}

static size_t keyed_hash(const void *key)
{
    uint8_t hash[crypto_shorthash_BYTES];
    crypto_shorthash(hash, key, strlen(key), hash_key);
    size_t value;
    memcpy(&value, hash, sizeof value);
    return value;
}

static void text_free(void **item)
{
    free(*item);
    *item = NULL;
}

static void approved_free(void **item)
{
    approved_t *a = *item;
    if (a)
        free(a->category);
    free(a);
    *item = NULL;
}

audit_tally_t *audit_tally_new(uint64_t since_ms)
{
    pthread_once(&hash_key_made, make_hash_key);
    audit_tally_t *self = calloc(1, sizeof *self);
    if (!self || !(self->cell_of = zhashx_new()) || !(self->approved = zhashx_new()) ||
        !(self->given = zhashx_new()) || !(self->organisations = zhashx_new())) {
        audit_tally_destroy(&self);
        return NULL;
    }
    zhashx_set_key_hasher(self->cell_of, keyed_hash);
    zhashx_set_key_hasher(self->approved, keyed_hash);
    zhashx_set_key_hasher(self->given, keyed_hash);
    zhashx_set_key_hasher(self->organisations, keyed_hash);
    zhashx_set_destructor(self->organisations, text_free);
    zhashx_set_destructor(self->approved, approved_free);
    self->since_ms = since_ms;
    return self;
}

void audit_tally_destroy(audit_tally_t **self_p)
{
    audit_tally_t *t = *self_p;
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++) {
        free(t->cells[i]->category);
        free(t->cells[i]->organisation);
        free(t->cells[i]);
    }
    free(t->cells);
    zhashx_destroy(&t->cell_of);
    zhashx_destroy(&t->approved);
    zhashx_destroy(&t->given);
    zhashx_destroy(&t->organisations);
    free(t->seen);
    free(t);
    *self_p = NULL;
}

uint64_t audit_tally_accepted(const audit_tally_t *self)
{
    return self->accepted;
}

uint64_t audit_tally_shared(const audit_tally_t *self)
{
    return self->shared;
}

static int by_category(const void *a, const void *b)
{
    const cell_t *x = *(cell_t *const *)a, *y = *(cell_t *const *)b;
    int c = strcmp(x->category, y->category);
    return c ? c : strcmp(x->organisation, y->organisation);
}

static void sort(audit_tally_t *t)
{
    if (!t->sorted && t->n) /* none: cells is NULL, which qsort may not be given */
        qsort(t->cells, t->n, sizeof *t->cells, by_category);
    t->sorted = true;
}

static int by_text(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*  texts[0..n) sorted, each once: how many are left. */
static size_t sort_unique(const char **texts, size_t n)
{
    if (n == 0) /* texts may be NULL, which qsort may not be given */
        return 0;
    qsort(texts, n, sizeof *texts, by_text);
    size_t kept = 1;
    for (size_t i = 1; i < n; i++)
        if (strcmp(texts[i], texts[kept - 1]) != 0)
            texts[kept++] = texts[i];
    return kept;
}

/*  The distinct values of the cells' field at offset, sorted. */
static size_t distinct(const audit_tally_t *t, size_t offset, const char **out)
{
    for (size_t i = 0; i < t->n; i++)
        out[i] = *(char *const *)((const char *)t->cells[i] + offset);
    return sort_unique(out, t->n);
}

static void *grow(void *array, size_t *cap, size_t item)
{
    *cap = *cap ? 2 * *cap : 16;
    void *grown = realloc(array, *cap * item);
    if (!grown)
        abort();
    return grown;
}

/*  "LENGTH:CATEGORY" then the organisation: no two pairs have one key. */
static char *cell_key(const char *category, const char *organisation)
{
    char *key = NULL;
    if (asprintf(&key, "%zu:%s%s", strlen(category), category, organisation) < 0)
        abort();
    return key;
}

static void count_cell(audit_tally_t *t, const char *category, const char *organisation)
{
    char *key = cell_key(category, organisation);
    cell_t *cell = zhashx_lookup(t->cell_of, key);
    if (cell) {
        cell->reports++;
        free(key);
        return;
    }
    if (t->n == t->cap)
        t->cells = grow(t->cells, &t->cap, sizeof *t->cells);
    cell = malloc(sizeof *cell);
    if (!cell || !(cell->category = strdup(category)) ||
        !(cell->organisation = strdup(organisation)) || zhashx_insert(t->cell_of, key, cell) != 0)
        abort();
    cell->reports = 1;
    t->cells[t->n++] = cell;
    free(key);
}

/*  The organisation the report was delivered to, to be counted once. */
static void note_seen(audit_tally_t *t, const char *organisation)
{
    if (t->n_seen == t->cap_seen)
        t->seen = grow(t->seen, &t->cap_seen, sizeof *t->seen);
    t->seen[t->n_seen++] = organisation;
}

void audit_tally_expect(audit_tally_t *t, const void *data, size_t len)
{
    uint64_t time_ms;
    if (!audit_leaf_approval(data, len, &time_ms))
        return;
    struct fy_document *doc = audit_leaf_parse(data, len);
    char *key = doc ? audit_leaf_report_key(fy_document_root(doc)) : NULL;
    approved_t *a = NULL;
    if (key && !zhashx_lookup(t->approved, key) &&
        (!(a = calloc(1, sizeof *a)) || zhashx_insert(t->approved, key, a) != 0))
        abort();
    free(key);
    fy_document_destroy(doc);
}

/*  Whether organisation had the report of key before; it has now. */
static bool given_before(audit_tally_t *t, const char *key, const char *organisation)
{
    char *pair = cell_key(key, organisation);
    bool before = zhashx_lookup(t->given, pair) != NULL;
    if (!before && zhashx_insert(t->given, pair, t) != 0) /* any item but NULL */
        abort();
    free(pair);
    return before;
}

/*  An agency's organisation as the report's accepted leaf named it (for
 *  an approval leaf that names agencies alone), or the agency itself. */
static const char *organisation_of(audit_tally_t *t, const char *key, const char *agency)
{
    char *pair = key ? cell_key(key, agency) : NULL;
    const char *organisation = pair ? zhashx_lookup(t->organisations, pair) : NULL;
    free(pair);
    return organisation ? organisation : agency;
}

/*  The organisations of an accepted leaf's recipients, for a report an
 *  approval names: an approval leaf of the earlier form names agencies. */
static void note_organisations(audit_tally_t *t, const char *key, struct fy_node *to)
{
    void *iter = NULL;
    struct fy_node *item;
    while (to && fy_node_is_sequence(to) && (item = fy_node_sequence_iterate(to, &iter))) {
        const char *agency = audit_leaf_text(item, "agency"),
                   *organisation = audit_leaf_text(item, "organisation");
        if (!agency || !organisation)
            continue;
        char *pair = cell_key(key, agency), *copy = strdup(organisation);
        if (!copy)
            abort();
        if (zhashx_insert(t->organisations, pair, copy) != 0)
            free(copy); /* named twice: the first stays */
        free(pair);
    }
}

/*  The organisations of the recipients the leaf lists under key that it
 *  says were delivered to, each once, into t->seen. */
static size_t delivered_to(audit_tally_t *t, struct fy_node *leaf, const char *key)
{
    struct fy_node *to = audit_leaf_member(leaf, key), *item;
    void *iter = NULL;
    t->n_seen = 0;
    while (to && fy_node_is_sequence(to) && (item = fy_node_sequence_iterate(to, &iter))) {
        const char *organisation = audit_leaf_text(item, "organisation");
        if (!organisation)
            organisation = audit_leaf_text(item, "agency");
        if (organisation && audit_leaf_true(item, "delivered"))
            note_seen(t, organisation);
    }
    return sort_unique(t->seen, t->n_seen);
}

/*  An accepted leaf: counted when of the period; what it gave whom noted
 *  for a report an approval names (key, approved), of the period or not. */
static void add_accepted(audit_tally_t *t, struct fy_node *leaf, bool counted, const char *key,
                         approved_t *approved)
{
    const char *category = audit_leaf_text(leaf, "category");
    size_t organisations = category ? delivered_to(t, leaf, "to") : 0;
    if (approved) {
        if (category && !approved->category && !(approved->category = strdup(category)))
            abort();
        note_organisations(t, key, audit_leaf_member(leaf, "to"));
        for (size_t i = 0; i < organisations; i++)
            given_before(t, key, t->seen[i]);
        approved->shared = approved->shared || (counted && organisations > 0);
    }
    for (size_t i = 0; counted && i < organisations; i++)
        count_cell(t, category, t->seen[i]);
    t->accepted += counted && category != NULL;
    t->shared += counted && organisations > 0;
}

/*  The organisations an approval leaf released the report to, each once,
 *  into t->seen: its recipients', or for a leaf of the earlier form, which
 *  names agencies alone, each agency's as the accepted leaf named it. */
static size_t released_to(audit_tally_t *t, struct fy_node *leaf, const char *key)
{
    if (audit_leaf_member(leaf, "recipients"))
        return delivered_to(t, leaf, "recipients");
    struct fy_node *released = audit_leaf_member(leaf, "released"), *item;
    void *iter = NULL;
    t->n_seen = 0;
    while (released && fy_node_is_sequence(released) &&
           (item = fy_node_sequence_iterate(released, &iter)))
        if (fy_node_get_scalar0(item))
            note_seen(t, organisation_of(t, key, fy_node_get_scalar0(item)));
    return sort_unique(t->seen, t->n_seen);
}

/*  An approval leaf: each organisation it released the report to that
 *  had not had it (at acceptance, or by an earlier approval) counts, when
 *  the leaf is of the period; one that had it before the period does not
 *  count again. */
static void add_approval(audit_tally_t *t, struct fy_node *leaf, bool counted, const char *key,
                         approved_t *approved)
{
    const char *category = audit_leaf_text(leaf, "category");
    if (!category)
        category = approved && approved->category ? approved->category : AUDIT_TALLY_UNRECORDED;
    size_t organisations = released_to(t, leaf, key);
    bool any = false;
    for (size_t i = 0; i < organisations; i++) {
        if (key && given_before(t, key, t->seen[i]))
            continue;
        if (counted)
            count_cell(t, category, t->seen[i]);
        any = any || counted;
    }
    t->shared += any && !(approved && approved->shared);
    if (approved)
        approved->shared = approved->shared || any;
}

void audit_tally_add(audit_tally_t *t, const void *data, size_t len)
{
    uint64_t time_ms;
    bool accepted = audit_leaf_accepted(data, len, &time_ms);
    if (!accepted && !audit_leaf_approval(data, len, &time_ms))
        return;
    bool counted = time_ms >= t->since_ms;
    /* one before the period matters only to what approvals count */
    if (!counted && zhashx_size(t->approved) == 0)
        return;
    struct fy_document *doc = audit_leaf_parse(data, len);
    struct fy_node *leaf = doc ? fy_document_root(doc) : NULL;
    char *key = leaf ? audit_leaf_report_key(leaf) : NULL;
    approved_t *approved = key ? zhashx_lookup(t->approved, key) : NULL;
    if (leaf && accepted && (counted || approved))
        add_accepted(t, leaf, counted, key, approved);
    else if (leaf && !accepted)
        add_approval(t, leaf, counted, key, approved);
    t->sorted = false;
    free(key);
    fy_document_destroy(doc);
}

/*  s as cv_text_write writes it, in a string of the caller's. */
static char *readable(const char *s)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    if (!out)
        abort();
    cv_text_write(out, s, strlen(s));
    if (fclose(out) != 0 || !text)
        abort();
    return text;
}

void audit_tally_print(audit_tally_t *t, FILE *out, const char *since)
{
    sort(t);
    char **category = calloc(t->n + 1, sizeof *category),
         **organisation = calloc(t->n + 1, sizeof *organisation);
    if (!category || !organisation)
        abort();
    int width_c = (int)strlen("CATEGORY"), width_o = (int)strlen("ORGANISATION");
    for (size_t i = 0; i < t->n; i++) {
        category[i] = readable(t->cells[i]->category);
        organisation[i] = readable(t->cells[i]->organisation);
        int c = (int)strlen(category[i]), o = (int)strlen(organisation[i]);
        width_c = c > width_c ? c : width_c;
        width_o = o > width_o ? o : width_o;
    }
    fprintf(out, "reports shared, by category and recipient organisation%s%s\n",
            since ? ", since " : "", since ? since : "");
    fprintf(out, "%-*s  %-*s  %s\n", width_c, "CATEGORY", width_o, "ORGANISATION", "REPORTS");
    for (size_t i = 0; i < t->n; i++) {
        fprintf(out, "%-*s  %-*s  %" PRIu64 "\n", width_c, category[i], width_o, organisation[i],
                t->cells[i]->reports);
        free(category[i]);
        free(organisation[i]);
    }
    fprintf(out,
            "%" PRIu64 " reports accepted, %" PRIu64 " shared with at least one organisation\n",
            t->accepted, t->shared);
    free(category);
    free(organisation);
}

void audit_tally_json(audit_tally_t *t, FILE *out)
{
    sort(t);
    cv_json_writer_t *w = cv_json_writer_new(CV_JSON_PRETTY);
    cv_json_object_begin(w);
    cv_json_key(w, "accepted");
    cv_json_uint(w, t->accepted);
    cv_json_key(w, "shared");
    cv_json_uint(w, t->shared);
    cv_json_key(w, "by");
    cv_json_array_begin(w);
    for (size_t i = 0; i < t->n; i++) {
        cv_json_object_begin(w);
        cv_json_key(w, "category");
        cv_json_string(w, t->cells[i]->category);
        cv_json_key(w, "organisation");
        cv_json_string(w, t->cells[i]->organisation);
        cv_json_key(w, "reports");
        cv_json_uint(w, t->cells[i]->reports);
        cv_json_object_end(w);
    }
    cv_json_array_end(w);
    cv_json_object_end(w);
    fprintf(out, "%s\n", cv_json_writer_text(w));
    cv_json_writer_destroy(&w);
}

/*  Distinct colours for up to 10 organisations, then round again. */
static const char *const colours[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                      "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

#define SVG_LEFT 220 /* room for the category names */
#define SVG_BAR  18
#define SVG_GAP  14  /* between categories */
#define SVG_PLOT 520 /* the longest bar */
#define SVG_TOP  70
#define SVG_ROW  20 /* a legend line */

static void svg_bars(FILE *out, const audit_tally_t *t, const char **orgs, size_t n_orgs,
                     uint64_t max, int *y)
{
    const char *category = NULL;
    for (size_t i = 0; i < t->n; i++) {
        const cell_t *c = t->cells[i];
        if (!category || strcmp(category, c->category) != 0) {
            *y += category ? SVG_GAP : 0;
            category = c->category;
            fprintf(out, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", SVG_LEFT - 8, *y + 14);
            cv_xml_text(out, category);
            fprintf(out, "</text>\n");
        }
        const char **found = bsearch(&c->organisation, orgs, n_orgs, sizeof *orgs, by_text);
        size_t o = found ? (size_t)(found - orgs) : 0; /* found: orgs holds every cell's */
        int length = (int)(c->reports * SVG_PLOT / max);
        fprintf(out, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\"><title>",
                SVG_LEFT, *y, length > 0 ? length : 1, SVG_BAR - 2, colours[o % 10]);
        cv_xml_text(out, c->category);
        fputs(", ", out);
        cv_xml_text(out, c->organisation);
        fprintf(out, ": %" PRIu64 "</title></rect>\n", c->reports);
        fprintf(out, "<text x=\"%d\" y=\"%d\" class=\"count\">%" PRIu64 "</text>\n",
                SVG_LEFT + length + 6, *y + 13, c->reports);
        *y += SVG_BAR;
    }
}

/*  A horizontal bar chart: a group of bars per category, a bar per
 *  organisation, coloured by organisation, with the count at its end. */
bool audit_tally_svg(audit_tally_t *t, FILE *out, const char *since)
{
    sort(t);
    const char **orgs = calloc(t->n + 1, sizeof *orgs), **cats = calloc(t->n + 1, sizeof *cats);
    size_t n_orgs = distinct(t, offsetof(cell_t, organisation), orgs);
    size_t n_cats = distinct(t, offsetof(cell_t, category), cats);
    uint64_t max = 1;
    for (size_t i = 0; i < t->n; i++)
        max = t->cells[i]->reports > max ? t->cells[i]->reports : max;
    int plot = (int)(t->n * SVG_BAR + (n_cats ? n_cats - 1 : 0) * SVG_GAP);
    int width = SVG_LEFT + SVG_PLOT + 60;
    int height = SVG_TOP + plot + 50 + (int)n_orgs * SVG_ROW + 20;
    fprintf(out,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"13\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
            "<text x=\"%d\" y=\"28\" font-size=\"18\" font-weight=\"bold\" "
            "text-anchor=\"middle\">Reports shared, by category and recipient organisation"
            "</text>\n",
            width, height, width, height, width / 2);
    fprintf(out, "<text x=\"%d\" y=\"48\" text-anchor=\"middle\" fill=\"#444\">", width / 2);
    fprintf(out, "%" PRIu64 " reports accepted, %" PRIu64 " shared", t->accepted, t->shared);
    if (since) {
        fputs(", since ", out);
        cv_xml_text(out, since);
    }
    fputs("</text>\n", out);
    fprintf(out,
            "<text transform=\"translate(16,%d) rotate(-90)\" text-anchor=\"middle\" "
            "font-weight=\"bold\">Category</text>\n",
            SVG_TOP + plot / 2);
    int y = SVG_TOP;
    svg_bars(out, t, orgs, n_orgs, max, &y);
    fprintf(out,
            "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n"
            "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n"
            "<text x=\"%d\" y=\"%d\" text-anchor=\"start\">0</text>\n"
            "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%" PRIu64 "</text>\n"
            "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-weight=\"bold\">"
            "Reports shared</text>\n",
            SVG_LEFT, SVG_TOP - 4, SVG_LEFT, y + 4, SVG_LEFT, y + 4, SVG_LEFT + SVG_PLOT, y + 4,
            SVG_LEFT, y + 18, SVG_LEFT + SVG_PLOT, y + 18, max, SVG_LEFT + SVG_PLOT / 2, y + 36);
    y += 56;
    fprintf(out, "<text x=\"%d\" y=\"%d\" font-weight=\"bold\">Recipient organisation</text>\n",
            SVG_LEFT, y);
    for (size_t o = 0; o < n_orgs; o++) {
        y += SVG_ROW;
        fprintf(out,
                "<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"14\" fill=\"%s\"/>"
                "<text x=\"%d\" y=\"%d\">",
                SVG_LEFT, y - 12, colours[o % 10], SVG_LEFT + 20, y);
        cv_xml_text(out, orgs[o]);
        fputs("</text>\n", out);
    }
    fputs("</svg>\n", out);
    free(orgs);
    free(cats);
    return !ferror(out);
}
