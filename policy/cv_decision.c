/*  cv_decision.c: decide whether a report goes to a recipient, and build
 *  or pack the recipient's view of it.
 *
 *  Deciding is the hot path (the broker decides every report for every
 *  agency), so it allocates nothing once the decision's arrays have grown,
 *  reads only compact, shared data (cv_agency_hot_t, the type's rule
 *  buckets, cv_entry_hot_t) and records nothing about the entries that did
 *  not apply: why, the order of the matches, and the text of reasons and
 *  field explanations are worked out only when someone asks for them.
 *  Views are two ways: malloc'd (cv_decision_view), or packed straight
 *  from the report without a view (cv_decision_pack): the same fields,
 *  masked the same, and byte for byte the same once packed.
 *
 *  The semantics are those of docs/policy.md, numbered there:
 *  default deny (1), rule matching (2), field levels (4), the union of
 *  grants with the most protective outcome per field (5), masks (6),
 *  handling codes 4 and 5 (7), no echo to the originator (8), and
 *  restrictions, which cap the fields of the deliveries they name after
 *  the union (10).
 */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy_internal.h"

typedef enum {
    R_UNKNOWN_RECIPIENT,
    R_UNKNOWN_ORIGINATOR,
    R_OWN_REPORT,
    R_UNKNOWN_CATEGORY,
    R_UNKNOWN_LEVEL,
    R_ABOVE_CLEARANCE,
    R_UNKNOWN_CODE,
    R_CODE_RECIPIENT,
    R_CODE_ORGANISATION,
    R_CODE_APPROVAL,
    R_ENTRY_FROM,
    R_ENTRY_AREA,
    R_ENTRY_LEVEL,
    R_SCREEN_NO_MATCH,
    R_NOTHING_GRANTED,
    R_RESTRICTED_ALL,
    R_NO_ENTRY,
} reason_code_t;

typedef struct {
    reason_code_t code;
    int entry;
} reason_t;

/*  Why a field has the outcome it has. */
typedef enum {
    W_NOT_GRANTED = 0,
    W_ENVELOPE,
    W_GRANTED,
    W_DENIED,
    W_ABOVE_CLEARANCE,
    W_ABOVE_MAX_LEVEL,
    W_MASK_FAILED,
    W_NOT_DELIVERED,
    W_RESTRICTED,
} why_t;

typedef struct {
    uint8_t grant; /* cv_grant_t */
    uint8_t why;   /* why_t */
    int entry;     /* the entry behind it (W_RESTRICTED: the restriction), or -1 */
} outcome_t;

/*  What compute_grants needs to know of a schema node. */
enum { NODE_INNER, NODE_LEAF, NODE_ENVELOPE };

/*  Scratch memory for cv_decision_pack: blocks, the newest first. */
typedef struct arena_block_t {
    struct arena_block_t *next;
    size_t size, used;
    _Alignas(max_align_t) unsigned char data[];
} arena_block_t;

struct cv_decision_t {
    const cv_policy_t *policy;
    const Caveat__Report *report;
    const cv_schema_node_t *nodes; /* the schema's, so no pthread_once per node */
    int recipient, originator, level, category;
    bool area_ok;        /* the report's area is the recipient's: same for every entry */
    uint64_t origin_bit; /* the originator's type, as a from_types bit */
    bool scanned;        /* entries were checked: near misses can be worked out */
    bool delivered;
    const Caveat__Report *grants_for; /* the report grant[] was worked out for, or NULL */

    int *matched; /* entry indexes, in policy order once sorted */
    int n_matched, cap_matched;
    int *released; /* those of them that released the report (settle_released) */
    int n_released, cap_released;
    int *told; /* those the recipient is told (settle_released, entries_told) */
    int n_told, cap_told;
    bool released_done;
    int *restricted; /* the restrictions that apply, in policy order */
    int n_restricted, cap_restricted;
    bool restrictions_pending; /* not looked up yet: ensure_restricted before reading them */
    bool grants_restricted;    /* grant[] has the restrictions applied */
    bool restricted_all;       /* they removed every field the entries granted */
    bool sorted;
    reason_t *reasons;
    int n_reasons, cap_reasons;
    int *order; /* scratch for near misses */
    int cap_order;

    size_t size;   /* schema nodes */
    uint8_t *kind; /* NODE_* per node */
    uint8_t *field_level;
    uint8_t *grant;     /* cv_grant_t per leaf, for the view */
    uint8_t *failed;    /* a value of this leaf failed its mask */
    outcome_t *outcome; /* why, worked out for explanations only */
    bool outcome_done;
    uint8_t *granted;  /* something under this node goes */
    uint8_t *given;    /* the view holds something under this node (marking_hidden) */
    uint8_t *walked;   /* settle_given: WALK_TO a node marked, or WALK_ALL under one */
    uint8_t *present;  /* the report has a value here */
    int markings_node; /* field_markings: each value names another field */
    int area_node, indicators_node, summary_node, narrative_node; /* what entries match on */
    int *marked; /* per marking of the report, the node it names or -1
                    (compute_field_levels, for marking_hidden) */
    int cap_marked;
    bool viewed;

    arena_block_t *arena;
    int *last_child;   /* per node + 1 (0 for the root): its last field's node, or -1 */
    int *prev_sibling; /* per node: the field before it in its message, or -1 */
    uint8_t *out;      /* cv_decision_pack writes back to front: used bytes at the end */
    size_t out_cap, used;
    bool encodable; /* the packer handles every field of the report */

    /* text, formatted on demand, freed on the next decision */
    char **reason_text;
    int n_reason_text;
    bool reasons_done;
    cv_field_decision_t *fields;
    char **field_why;
    int n_fields;
    bool fields_done;
};

static void *grow(void *array, int *cap, size_t item)
{
    int wanted = *cap ? *cap * 2 : 16;
    void *grown = realloc(array, (size_t)wanted * item);
    if (!grown)
        abort();
    *cap = wanted;
    return grown;
}

static bool encodable(const ProtobufCMessageDescriptor *d, int depth);

/*  For cv_decision_pack, which walks each message's fields last to first. */
static void link_siblings(cv_decision_t *self)
{
    self->last_child = malloc((self->size + 1) * sizeof *self->last_child);
    self->prev_sibling = malloc(self->size * sizeof *self->prev_sibling);
    if (!self->last_child || !self->prev_sibling)
        abort();
    for (size_t i = 0; i <= self->size; i++)
        self->last_child[i] = -1;
    for (size_t i = 0; i < self->size; i++) { /* in order, so each is the last so far */
        int *last = &self->last_child[self->nodes[i].parent + 1];
        self->prev_sibling[i] = *last;
        *last = (int)i;
    }
}

cv_decision_t *cv_decision_new(void)
{
    cv_decision_t *self = calloc(1, sizeof *self);
    if (!self)
        abort();
    const cv_schema_t *schema = cv_schema_report();
    self->nodes = cv_schema_node(schema, 0);
    self->size = (size_t)cv_schema_size(schema);
    self->kind = calloc(self->size, 1);
    self->field_level = calloc(self->size, 1);
    self->grant = calloc(self->size, 1);
    self->failed = calloc(self->size, 1);
    self->outcome = calloc(self->size, sizeof *self->outcome);
    self->granted = calloc(self->size, 1);
    self->present = calloc(self->size, 1);
    self->given = calloc(self->size, 1);
    self->walked = calloc(self->size, 1);
    if (!self->kind || !self->field_level || !self->grant || !self->failed || !self->outcome ||
        !self->granted || !self->present || !self->given || !self->walked)
        abort();
    for (size_t i = 0; i < self->size; i++)
        self->kind[i] = !self->nodes[i].is_leaf   ? NODE_INNER
                        : self->nodes[i].envelope ? NODE_ENVELOPE
                                                  : NODE_LEAF;
    link_siblings(self);
    self->encodable = encodable(cv_schema_descriptor(schema), 0);
    self->markings_node = cv_schema_find(schema, "field_markings");
    self->area_node = cv_schema_find(schema, "area");
    self->indicators_node = cv_schema_find(schema, "indicators");
    self->summary_node = cv_schema_find(schema, "summary");
    self->narrative_node = cv_schema_find(schema, "narrative");
    return self;
}

static void free_text(cv_decision_t *self)
{
    if (!self->reasons_done && !self->fields_done)
        return; /* the usual case: nobody asked */
    for (int i = 0; i < self->n_reason_text; i++)
        free(self->reason_text[i]);
    free(self->reason_text);
    self->reason_text = NULL;
    self->n_reason_text = 0;
    self->reasons_done = false;
    for (int i = 0; i < self->n_fields; i++)
        free(self->field_why[i]);
    free(self->field_why);
    free(self->fields);
    self->field_why = NULL;
    self->fields = NULL;
    self->n_fields = 0;
    self->fields_done = false;
}

void cv_decision_destroy(cv_decision_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cv_decision_t *self = *self_p;
    free_text(self);
    free(self->matched);
    free(self->released);
    free(self->told);
    free(self->restricted);
    free(self->reasons);
    free(self->order);
    free(self->marked);
    free(self->last_child);
    free(self->prev_sibling);
    free(self->out);
    free(self->kind);
    free(self->field_level);
    free(self->grant);
    free(self->failed);
    free(self->outcome);
    free(self->granted);
    free(self->present);
    free(self->given);
    free(self->walked);
    while (self->arena) {
        arena_block_t *next = self->arena->next;
        free(self->arena);
        self->arena = next;
    }
    free(self);
    *self_p = NULL;
}

static bool refuse(cv_decision_t *self, reason_code_t code, int entry)
{
    if (self->n_reasons == self->cap_reasons)
        self->reasons = grow(self->reasons, &self->cap_reasons, sizeof *self->reasons);
    self->reasons[self->n_reasons++] = (reason_t){code, entry};
    return false;
}

static void match(cv_decision_t *self, int entry)
{
    if (self->n_matched == self->cap_matched)
        self->matched = grow(self->matched, &self->cap_matched, sizeof *self->matched);
    self->matched[self->n_matched++] = entry;
}

/* ------------------------------------------------------------------------ */
/*  Deciding.                                                               */

static bool in_area(const cv_agency_t *recipient, const char *area)
{
    if (recipient->all_areas)
        return true;
    for (int i = 0; area && i < recipient->n_areas; i++)
        if (strcmp(recipient->areas[i], area) == 0)
            return true;
    return false;
}

static bool approved(const cv_approvals_t *approvals, const cv_agency_t *recipient)
{
    for (size_t i = 0; approvals && i < approvals->count; i++)
        if (strcmp(approvals->to[i], recipient->id) == 0 ||
            strcmp(approvals->to[i], recipient->type) == 0)
            return true;
    return false;
}

/*  Semantics 7: the report's handling code must allow the recipient. */
static bool code_allows(cv_decision_t *self, const cv_approvals_t *approvals)
{
    const cv_policy_t *p = self->policy;
    if (p->n_codes == 0)
        return true;
    const Caveat__Report *report = self->report;
    const cv_handling_code_t *code =
        cv_policy_code_find(p, report->grading ? report->grading->handling_code : NULL);
    const cv_agency_hot_t *to = &p->agency_hot[self->recipient];
    const cv_agency_hot_t *from = &p->agency_hot[self->originator];
    if (!code)
        return refuse(self, R_UNKNOWN_CODE, -1);
    if (code->has_to && !cv_agency_set_has_type(&code->to, to->type_id, self->recipient))
        return refuse(self, R_CODE_RECIPIENT, -1);
    if (code->same_organisation && to->org_id != from->org_id)
        return refuse(self, R_CODE_ORGANISATION, -1);
    if (code->originator_approval && !approved(approvals, &p->agencies[self->recipient].pub))
        return refuse(self, R_CODE_APPROVAL, -1);
    return true;
}

/*  in_area on interned ids: the report's area among the recipient's. */

/*  Semantics 2, for the parts not settled by the index (category and
 *  recipient) or by code_allows. The slow form, which says why not: for
 *  near misses, worked out only when reasons are asked for. */
static bool entry_applies(cv_decision_t *self, int index)
{
    const cv_policy_t *p = self->policy;
    const cv_entry_t *entry = &p->entries[index];
    if (!cv_agency_set_has(&entry->from, &p->agencies[self->originator], self->originator))
        return refuse(self, R_ENTRY_FROM, index);
    if (entry->same_area && !in_area(&p->agencies[self->recipient].pub, self->report->area))
        return refuse(self, R_ENTRY_AREA, index);
    if (self->level > entry->max_level)
        return refuse(self, R_ENTRY_LEVEL, index);
    return true;
}

/*  from_agencies holds the originator (sorted agency indexes). */
static bool from_listed(const cv_decision_t *self, const cv_entry_hot_t *hot)
{
    const int *listed = self->policy->from_pool + hot->from_first;
    for (int i = 0; i < hot->from_count && listed[i] <= self->originator; i++)
        if (listed[i] == self->originator)
            return true;
    return false;
}

/*  The fast form of the originator check, on the packed entry. */
static bool from_ok(const cv_decision_t *self, int index)
{
    const cv_entry_hot_t *hot = &self->policy->hot[index];
    return (hot->from_types & self->origin_bit) || (hot->from_count && from_listed(self, hot));
}

/*  Case-insensitive substring search, ASCII folding (keywords are ASCII). */
static bool contains_folded(const char *text, const char *lower_needle)
{
    return text && strcasestr(text, lower_needle) != NULL;
}

static bool in_list(char *const *list, int count, const char *value)
{
    for (int i = 0; i < count; i++)
        if (strcmp(list[i], value) == 0)
            return true;
    return false;
}

/*  A screening entry's match on the parts of the report looked in: any
 *  of its categories, indicators (if indicators) or keywords (in the
 *  summary and narrative, if summary and narrative). */
static bool screen_matches_in(const cv_entry_t *entry, const Caveat__Report *report, int category,
                              bool indicators, bool summary, bool narrative)
{
    if (entry->match_categories >> category & 1)
        return true;
    for (size_t i = 0; indicators && i < report->n_indicators; i++)
        if (in_list(entry->match_indicators, entry->n_match_indicators, report->indicators[i]))
            return true;
    for (int i = 0; (summary || narrative) && i < entry->n_match_keywords; i++)
        if ((summary && contains_folded(report->summary, entry->match_keywords[i])) ||
            (narrative && contains_folded(report->narrative, entry->match_keywords[i])))
            return true;
    return false;
}

/*  A screening entry's match on the whole report. */
static bool screen_matches(const cv_entry_t *entry, const Caveat__Report *report, int category)
{
    return screen_matches_in(entry, report, category, true, true, true);
}

static void reset(cv_decision_t *self, const cv_policy_t *policy, const Caveat__Report *report,
                  int recipient)
{
    free_text(self);
    self->policy = policy;
    self->report = report;
    self->recipient = recipient;
    self->originator = -1;
    self->level = -1;
    self->delivered = false;
    self->scanned = false;
    self->n_matched = 0;
    self->released_done = false;
    self->n_restricted = 0;
    self->restrictions_pending = false;
    self->restricted_all = false;
    self->sorted = true;
    self->n_reasons = 0;
    self->viewed = false;
    self->outcome_done = false;
    self->grants_for = NULL;
}

/*  Matches the rules of one run of buckets that cover the originator.
 *  Whether a rule covers it is a coin toss to the branch predictor, so
 *  each candidate is written and counted only if it does: no branch. */
static void scan_run(cv_decision_t *self, const cv_rule_index_t *index, int bucket, int ranks)
{
    int from = index->buckets[bucket], to = index->buckets[bucket + ranks];
    while (self->cap_matched - self->n_matched < to - from)
        self->matched = grow(self->matched, &self->cap_matched, sizeof *self->matched);
    int *matched = self->matched, n = self->n_matched;
    for (int i = from; i < to; i++) {
        const cv_entry_hot_t *hot = &self->policy->hot[index->rules[i]];
        bool covered = (hot->from_types & self->origin_bit) != 0;
        if (hot->from_count) /* from_agencies: the branch is rarely taken */
            covered |= from_listed(self, hot);
        matched[n] = index->rules[i];
        n += covered;
    }
    self->n_matched = n;
}

/*  The rules of the recipient's type for the category whose max_level
 *  allows the report (the first ranks of each run), with same_area only
 *  when the area is the recipient's: settled by the index, so only the
 *  originator is checked. */
static void scan_type_rules(cv_decision_t *self, const cv_rule_index_t *index)
{
    const cv_policy_t *p = self->policy;
    int ranks = p->n_levels - self->level;
    scan_run(self, index, cv_rule_bucket(p, self->category, 0, 0), ranks);
    if (self->area_ok)
        scan_run(self, index, cv_rule_bucket(p, self->category, 1, 0), ranks);
}

/*  The few rules that name the recipient itself: checked in full. */
static void scan_listed(cv_decision_t *self, const cv_agency_hot_t *to)
{
    const cv_listed_t *listed = self->policy->listed_pool + to->listed_first;
    for (int i = 0; i < to->n_listed; i++)
        if ((listed[i].categories >> self->category & 1) &&
            (!listed[i].same_area || self->area_ok) && self->level <= listed[i].max_level &&
            from_ok(self, listed[i].rule))
            match(self, listed[i].rule);
}

/*  Runs come by level, and listed rules after them: back to policy order
 *  (a handful of matches: insertion sort), but only when the order is
 *  asked for (names, explanations). The union of grants does not need it,
 *  and on the hot path its data-dependent branches mispredict. */
static void sort_matched(cv_decision_t *self)
{
    if (self->sorted)
        return;
    self->sorted = true;
    int *m = self->matched;
    for (int i = 1; i < self->n_matched; i++) {
        int e = m[i], j = i;
        for (; j > 0 && m[j - 1] > e; j--)
            m[j] = m[j - 1];
        m[j] = e;
    }
}

/*  Screening entries (a few per recipient) after the rules, in order:
 *  the first of them that released the report names the feed
 *  (cv_decision_feed). */
static void scan_screens(cv_decision_t *self, const cv_agency_hot_t *to)
{
    for (int i = 0; i < to->n_screens; i++) {
        int e = self->policy->screen_pool[to->screen_first + i];
        const cv_entry_t *entry = &self->policy->entries[e];
        if (screen_matches(entry, self->report, self->category) && from_ok(self, e) &&
            (!entry->same_area || self->area_ok) && self->level <= entry->max_level)
            match(self, e);
    }
}

/*  The restrictions that apply (semantics 10): those of the recipient's
 *  group for the category, settled by the index, that cover the
 *  originator. Branch-free as scan_run. */
static void scan_restrictions(cv_decision_t *self, const cv_agency_hot_t *to)
{
    const cv_policy_t *p = self->policy;
    const int *bucket =
        p->restriction_buckets + to->restriction_group * p->n_categories + self->category;
    int from = bucket[0], end = bucket[1];
    while (self->cap_restricted < end - from)
        self->restricted = grow(self->restricted, &self->cap_restricted, sizeof *self->restricted);
    int n = 0;
    for (int i = from; i < end; i++) {
        int r = p->restriction_pool[i];
        const cv_entry_hot_t *hot = &p->restriction_hot[r];
        bool covered = (hot->from_types & self->origin_bit) != 0;
        if (hot->from_count)
            covered |= from_listed(self, hot);
        self->restricted[n] = r;
        n += covered;
    }
    self->n_restricted = n;
}

static bool grants_something(cv_decision_t *self);

/*  The restrictions that apply, looked up now if decide left them: every
 *  reader of restricted[] calls this first. */
static void ensure_restricted(cv_decision_t *self)
{
    if (!self->restrictions_pending)
        return;
    self->restrictions_pending = false;
    scan_restrictions(self, &self->policy->agency_hot[self->recipient]);
}

bool cv_policy_decide(const cv_policy_t *self, const Caveat__Report *report, int recipient,
                      const cv_approvals_t *approvals, cv_decision_t *d)
{
    reset(d, self, report, recipient);
    if (recipient < 0 || recipient >= self->n_agencies)
        return refuse(d, R_UNKNOWN_RECIPIENT, -1);
    d->originator = cv_policy_agency_find(self, report->originator);
    if (d->originator < 0)
        return refuse(d, R_UNKNOWN_ORIGINATOR, -1);
    if (d->originator == recipient)
        return refuse(d, R_OWN_REPORT, -1);
    d->category = cv_policy_category_find(self, report->category);
    if (d->category < 0)
        return refuse(d, R_UNKNOWN_CATEGORY, -1);
    d->level = cv_policy_level_find(self, report->handling_level);
    if (d->level < 0)
        return refuse(d, R_UNKNOWN_LEVEL, -1);
    const cv_agency_hot_t *to = &self->agency_hot[recipient];
    if (d->level > to->clearance)
        return refuse(d, R_ABOVE_CLEARANCE, -1);
    if (!code_allows(d, approvals))
        return false;

    d->scanned = true;
    d->area_ok = cv_agency_covers(self, to, report->area);
    d->origin_bit = UINT64_C(1) << self->agency_hot[d->originator].type_id;
    scan_type_rules(d, &self->type_rules[to->type_id]);
    scan_listed(d, to);
    d->sorted = d->n_matched < 2;
    scan_screens(d, to); /* after every rule: the order stays right */
    /* which restrictions apply is looked up only when it matters: most
     * deliveries keep a field no restriction ever denies */
    d->restrictions_pending = d->n_matched > 0 && self->n_restrictions > 0;
    d->delivered = d->n_matched > 0 && grants_something(d);
    if (d->n_matched > 0 && !d->delivered)
        refuse(d, d->restricted_all ? R_RESTRICTED_ALL : R_NOTHING_GRANTED, -1);
    return d->delivered;
}

bool cv_decision_delivered(const cv_decision_t *self)
{
    return self->delivered;
}

static void settle_released(cv_decision_t *self);

/*  The entries that released the report: none when it was not delivered,
 *  even if entries matched (they only denied). */
int cv_decision_entry_count(const cv_decision_t *self)
{
    settle_released((cv_decision_t *)self);
    return self->n_released;
}

const char *cv_decision_entry_name(const cv_decision_t *self, int index)
{
    int entry = cv_decision_entry_index(self, index);
    return entry >= 0 ? self->policy->entries[entry].name : NULL;
}

int cv_decision_entry_index(const cv_decision_t *self, int index)
{
    settle_released((cv_decision_t *)self);
    return index >= 0 && index < self->n_released ? self->released[index] : -1;
}

int cv_decision_told_count(const cv_decision_t *self)
{
    settle_released((cv_decision_t *)self);
    return self->n_told;
}

const char *cv_decision_told_name(const cv_decision_t *self, int index)
{
    settle_released((cv_decision_t *)self);
    return index >= 0 && index < self->n_told ? self->policy->entries[self->told[index]].name
                                              : NULL;
}

/*  The feed of the first screening entry, in policy order, that released
 *  the report. Rules have none, and most deliveries match no screening
 *  entry: then nothing is worked out. */
const char *cv_decision_feed(const cv_decision_t *self)
{
    const cv_entry_t *entries = self->policy ? self->policy->entries : NULL;
    bool screened = false;
    for (int m = 0; self->delivered && m < self->n_matched && !screened; m++)
        screened = entries[self->matched[m]].feed != NULL;
    if (!screened)
        return NULL;
    settle_released((cv_decision_t *)self);
    for (int i = 0; i < self->n_released; i++)
        if (entries[self->released[i]].feed)
            return entries[self->released[i]].feed;
    return NULL;
}

/* ------------------------------------------------------------------------ */
/*  Field outcomes: semantics 4 and 5.                                      */

/*  A field's level: the report's, raised by any marking on it or a parent.
 *  A marking with an unknown level counts as the highest: fail closed.
 *  Returns whether any field was raised above the report's level. */
static bool compute_field_levels(cv_decision_t *self)
{
    const cv_policy_t *p = self->policy;
    const Caveat__Report *report = self->report;
    bool raised = false;
    memset(self->field_level, self->level, self->size);
    while ((size_t)self->cap_marked < report->n_field_markings)
        self->marked = grow(self->marked, &self->cap_marked, sizeof *self->marked);
    for (size_t m = 0; m < report->n_field_markings; m++) {
        const Caveat__FieldMarking *marking = report->field_markings[m];
        int node = marking->path ? cv_schema_find(p->schema, marking->path) : -1;
        self->marked[m] = node;
        if (node < 0)
            continue;
        int level = cv_policy_level_find(p, marking->level);
        if (level < 0)
            level = p->n_levels - 1;
        for (int i = node; i < self->nodes[node].end; i++)
            if (self->field_level[i] < level) {
                self->field_level[i] = (uint8_t)level;
                raised = true;
            }
    }
    return raised;
}

static int entry_cap(const cv_decision_t *self, const cv_entry_t *entry)
{
    int clearance = self->policy->agencies[self->recipient].pub.clearance;
    return entry->max_level < clearance ? entry->max_level : clearance;
}

static bool goes(cv_grant_t grant)
{
    return grant != CV_GRANT_NONE && grant != CV_GRANT_DENY;
}

/*  A leaf's outcome and why, entry by entry: for explanations. */
static outcome_t leaf_outcome(const cv_decision_t *self, int leaf)
{
    const cv_policy_t *p = self->policy;
    int clearance = p->agencies[self->recipient].pub.clearance;
    outcome_t out = {CV_GRANT_NONE, W_NOT_GRANTED, -1};
    if (self->nodes[leaf].envelope)
        return (outcome_t){CV_GRANT_SHARE, W_ENVELOPE, -1};
    for (int m = 0; m < self->n_matched; m++) {
        const cv_entry_t *entry = &p->entries[self->matched[m]];
        cv_grant_t grant = entry->grants[leaf];
        if (grant == CV_GRANT_NONE)
            continue;
        if (grant != CV_GRANT_DENY && self->field_level[leaf] > entry_cap(self, entry)) {
            /* a capped entry grants nothing for this field */
            if (out.grant == CV_GRANT_NONE)
                out = (outcome_t){CV_GRANT_NONE,
                                  self->field_level[leaf] > clearance ? W_ABOVE_CLEARANCE
                                                                      : W_ABOVE_MAX_LEVEL,
                                  self->matched[m]};
            continue;
        }
        if (grant > out.grant)
            out = (outcome_t){(uint8_t)grant, grant == CV_GRANT_DENY ? W_DENIED : W_GRANTED,
                              self->matched[m]};
    }
    /* restrictions cap what goes; the first to give the outcome is named */
    for (int r = 0; goes(out.grant) && r < self->n_restricted; r++) {
        const cv_restriction_t *restriction = &p->restrictions[self->restricted[r]];
        if (restriction->grants[leaf] > out.grant)
            out = (outcome_t){restriction->grants[leaf], W_RESTRICTED, self->restricted[r]};
    }
    return out;
}

/*  What leaf_outcome says for every leaf, plus the masks that failed in the
 *  view: worked out once, when an explanation is asked for. */
static void explain_outcomes(cv_decision_t *self)
{
    if (self->outcome_done)
        return;
    self->outcome_done = true;
    sort_matched(self); /* the first entry to give a leaf its outcome is named */
    ensure_restricted(self);
    compute_field_levels(self);
    for (int i = 0; i < (int)self->size; i++) {
        self->outcome[i] = self->nodes[i].is_leaf ? leaf_outcome(self, i)
                                                  : (outcome_t){CV_GRANT_NONE, W_NOT_GRANTED, -1};
        if (self->failed[i])
            self->outcome[i].why = W_MASK_FAILED;
    }
}

/*  One matched entry's part of the union (semantics 5: the most protective
 *  grant, the largest, wins). Without raised fields every field is at the
 *  report's level, which the entry and the recipient both allow (decide
 *  checked), so no grant is capped: a plain bytewise max over the entry's
 *  row, which leaves the cold cv_entry_t untouched. */
static void add_entry_grants(cv_decision_t *self, int e, bool raised)
{
    size_t size = self->size;
    const uint8_t *restrict grants = self->policy->grants + (size_t)e * size;
    uint8_t *restrict out = self->grant;
    if (!raised) {
        for (size_t i = 0; i < size; i++) /* vectorised */
            out[i] = grants[i] > out[i] ? grants[i] : out[i];
        return;
    }
    /* a field above the entry's cap takes nothing from it but a denial */
    uint8_t cap = (uint8_t)entry_cap(self, &self->policy->entries[e]);
    const uint8_t *restrict level = self->field_level;
    for (size_t i = 0; i < size; i++) { /* vectorised: no branch in the loop */
        bool kept = (grants[i] == CV_GRANT_DENY) | (level[i] <= cap);
        uint8_t g = kept ? grants[i] : CV_GRANT_NONE;
        out[i] = g > out[i] ? g : out[i];
    }
}

/*  Only leaves have grants, and the envelope goes whatever the entries say. */
static void only_leaves(uint8_t *restrict grant, const uint8_t *restrict kind, size_t size)
{
    for (size_t i = 0; i < size; i++) /* vectorised */
        grant[i] = kind[i] == NODE_ENVELOPE ? CV_GRANT_SHARE
                   : kind[i] == NODE_LEAF   ? grant[i]
                                            : CV_GRANT_NONE;
}

static bool some_leaf_goes(const cv_decision_t *self)
{
    for (size_t i = 0; i < self->size; i++)
        if (self->kind[i] == NODE_LEAF && goes(self->grant[i]))
            return true;
    return false;
}

/*  Semantics 10: after the union, the restrictions that apply cap it. */
static void apply_restrictions(cv_decision_t *self)
{
    for (int r = 0; r < self->n_restricted; r++)
        cv_restriction_cap(self->policy, self->restricted[r], self->grant, self->size);
}

/*  The grant per leaf (semantics 4 and 5), the same as leaf_outcome's but
 *  entry by entry over the whole schema; and which nodes have something
 *  that goes under them. */
/*  granted[]: whether something under each node goes. */
static void mark_granted(cv_decision_t *self)
{
    memset(self->granted, 0, self->size);
    /* pre-order: a node's descendants come after it, so from the end up */
    for (int i = (int)self->size - 1; i >= 0; i--) {
        self->granted[i] |= goes(self->grant[i]);
        if (self->nodes[i].parent >= 0)
            self->granted[self->nodes[i].parent] |= self->granted[i];
    }
}

static void compute_grants(cv_decision_t *self)
{
    ensure_restricted(self);
    self->grants_for = self->report;
    self->grants_restricted = true;
    bool raised = self->report->n_field_markings > 0 && compute_field_levels(self);
    memset(self->grant, CV_GRANT_NONE, self->size);
    memset(self->failed, 0, self->size);
    for (int m = 0; m < self->n_matched; m++)
        add_entry_grants(self, self->matched[m], raised);
    if (self->n_restricted > 0)
        apply_restrictions(self);
    only_leaves(self->grant, self->kind, self->size);
    mark_granted(self);
}

/*  Grants worked out without restrictions (goes_whatever_restricted),
 *  capped now: the same as compute_grants, since a cap leaves NONE alone
 *  and only_leaves puts the envelope back whatever a row said. */
static void restrict_grants(cv_decision_t *self)
{
    ensure_restricted(self);
    self->grants_restricted = true;
    if (self->n_restricted == 0)
        return;
    apply_restrictions(self);
    only_leaves(self->grant, self->kind, self->size);
    mark_granted(self);
}

/*  Whether the entries' union, before restrictions, had a field that goes:
 *  worked out again only when nothing went after them, for the reason (a
 *  delivery restrictions empty is rare; a delivery is not). The grants are
 *  not those of a delivery then, and are left so. */
static bool entries_alone_grant(cv_decision_t *self)
{
    int restricted = self->n_restricted;
    self->n_restricted = 0;
    compute_grants(self);
    self->n_restricted = restricted;
    self->grants_for = NULL;
    return some_leaf_goes(self);
}

/*  Semantics 1: entries that match deliver only when one of them is an
 *  explicit notice (fields: {}) or some field is shared or masked after
 *  their union (deny wins), levels and restrictions: an entry that only
 *  denies never tells a recipient that a report exists, and neither does
 *  one whose every field a restriction removes. A notice delivers whatever
 *  the restrictions say: they cap fields, and a notice has none. One entry,
 *  no raised fields and no restriction is settled by the entry alone (its
 *  grants are all within its cap, which decide checked); otherwise the
 *  grants are worked out. */
/*  A field that goes whatever restrictions apply: one that goes after the
 *  entries' union (deny wins, levels count) and that no restriction of the
 *  policy denies, since a restriction only caps a field and a mask leaves it
 *  going. With one entry and no raised field the entry's row says it alone
 *  (its match checked the level); else the union is worked out without
 *  restrictions, and left for compute_grants to redo with them. */
static bool goes_whatever_restricted(cv_decision_t *self, bool alone)
{
    const cv_policy_t *p = self->policy;
    const uint8_t *denies = p->restriction_denies;
    if (alone) {
        const uint8_t *row = p->grants + (size_t)self->matched[0] * self->size;
        for (size_t i = 0; i < self->size; i++)
            if (self->kind[i] == NODE_LEAF && goes(row[i]) && !denies[i])
                return true;
        return false;
    }
    bool pending = self->restrictions_pending;
    int restricted = self->n_restricted;
    self->restrictions_pending = false;
    self->n_restricted = 0;
    compute_grants(self);
    self->restrictions_pending = pending;
    self->n_restricted = restricted;
    self->grants_restricted = false; /* the view caps them (restrict_grants) */
    for (size_t i = 0; i < self->size; i++)
        if (self->kind[i] == NODE_LEAF && goes(self->grant[i]) && !denies[i])
            return true;
    return false;
}

static bool grants_something(cv_decision_t *self)
{
    const cv_policy_t *p = self->policy;
    bool any = false;
    for (int m = 0; m < self->n_matched; m++) {
        const cv_entry_t *entry = &p->entries[self->matched[m]];
        if (entry->notice)
            return true;
        any = any || entry->grants_any;
    }
    bool alone = self->n_matched == 1 && self->report->n_field_markings == 0;
    if (!any || (alone && p->n_restrictions == 0))
        return any;
    if (p->n_restrictions > 0 && goes_whatever_restricted(self, alone))
        return true; /* the grants and restrictions are worked out for the view */
    compute_grants(self);
    if (some_leaf_goes(self))
        return true;
    if (self->n_restricted > 0)
        self->restricted_all = entries_alone_grant(self);
    return false;
}

/* ------------------------------------------------------------------------ */
/*  Building the view: a generic copy over the descriptor that copies only
 *  what is granted, masking on the way. Nothing withheld is ever copied, so
 *  no withheld byte can reach the packed view.                             */

/*  Zeroed memory from the arena, which grows by blocks. */
static void *arena_alloc(cv_decision_t *self, size_t size)
{
    size = (size + 15) & ~(size_t)15;
    arena_block_t *block = self->arena;
    if (!block || block->size - block->used < size) {
        size_t want = block ? 2 * block->size : 8192;
        if (want < size)
            want = size;
        if (!(block = malloc(sizeof *block + want)))
            abort();
        *block = (arena_block_t){.next = self->arena, .size = want};
        self->arena = block;
    }
    void *memory = block->data + block->used;
    block->used += size;
    return memset(memory, 0, size);
}

/*  Empties the arena (cv_decision_pack's scratch) as one block as large as
 *  everything the last use needed: once warm, packing allocates nothing. */
static void arena_reset(cv_decision_t *self)
{
    arena_block_t *block = self->arena;
    if (!block || !block->next) {
        if (block)
            block->used = 0;
        return;
    }
    size_t total = 0;
    for (; block; block = self->arena) {
        total += block->size;
        self->arena = block->next;
        free(block);
    }
    arena_alloc(self, total);
    self->arena->used = 0;
}

/*  Zeroed memory for the view, from malloc so that
 *  protobuf_c_message_free_unpacked frees it. */
static void *view_alloc(cv_decision_t *self, size_t size)
{
    (void)self;
    void *memory = calloc(1, size ? size : 1);
    if (!memory)
        abort();
    return memory;
}

static void view_free(cv_decision_t *self, void *memory)
{
    (void)self;
    free(memory);
}

static ProtobufCMessage *copy_message(cv_decision_t *self, const ProtobufCMessage *src, int parent);

/*  Asks for the memory behind src's granted fields at once, before the
 *  walk reads it field by field: a report just taken from a queue or a
 *  store is cold, and its fields are separate allocations. */
static void prefetch_fields(const cv_decision_t *self, const ProtobufCMessage *src, int parent)
{
    for (int node = self->last_child[parent + 1]; node >= 0; node = self->prev_sibling[node]) {
        const ProtobufCFieldDescriptor *f = self->nodes[node].field;
        bool pointer = f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE ||
                       f->label == PROTOBUF_C_LABEL_REPEATED;
        if (self->granted[node] && pointer)
            __builtin_prefetch(*(void *const *)((const char *)src + f->offset));
    }
}

/*  The same for the values of a repeated field. */
static void prefetch_values(const ProtobufCFieldDescriptor *f, const void *values, size_t n)
{
    if (f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE)
        for (size_t i = 0; i < n; i++)
            __builtin_prefetch(((void *const *)values)[i]);
}

static bool mask_into(cv_decision_t *self, cv_grant_t grant, const char *value, size_t len,
                      char *out)
{
    switch (grant) {
    case CV_GRANT_SHARE:
        memcpy(out, value, len + 1);
        return true;
    case CV_GRANT_YEAR:
        return cv_mask_year_into(value, out);
    case CV_GRANT_POSTCODE_DISTRICT:
        return cv_mask_postcode_district_into(value, out);
    case CV_GRANT_INITIALS:
        return cv_mask_initials_into(value, out);
    case CV_GRANT_PSEUDONYMISE:
        cv_mask_pseudonymise_into(self->policy->pseudonym_key,
                                  self->policy->agencies[self->recipient].pub.organisation, value,
                                  out);
        return true;
    default:
        return false;
    }
}

/*  The value as granted, in view memory; NULL when it cannot be masked. */
static char *mask_string(cv_decision_t *self, cv_grant_t grant, const char *value)
{
    size_t len = strlen(value);
    size_t size = grant == CV_GRANT_SHARE      ? len + 1
                  : grant == CV_GRANT_INITIALS ? 2 * len + 1
                                               : CV_MASK_MAX;
    char *out = view_alloc(self, size);
    if (mask_into(self, grant, value, len, out))
        return out;
    view_free(self, out);
    return NULL;
}

/*  A map entry: the key as is, the value as granted. */
static ProtobufCMessage *copy_map_entry(cv_decision_t *self, const ProtobufCMessage *src,
                                        cv_grant_t grant)
{
    const ProtobufCMessageDescriptor *d = src->descriptor;
    const char *key = *(char *const *)((const char *)src + d->fields[0].offset);
    const char *value = *(char *const *)((const char *)src + d->fields[1].offset);
    if (!key || !value)
        return NULL;
    char *masked = mask_string(self, grant, value);
    if (!masked)
        return NULL;
    ProtobufCMessage *dst = view_alloc(self, d->sizeof_message);
    protobuf_c_message_init(d, dst);
    *(char **)((char *)dst + d->fields[0].offset) = mask_string(self, CV_GRANT_SHARE, key);
    *(char **)((char *)dst + d->fields[1].offset) = masked;
    return dst;
}

/*  Copies one value of field (at src_value) to dst_value. Returns false
 *  when the value cannot be masked as granted, so it is withheld. */
static bool copy_value(cv_decision_t *self, int node, const void *src_value, void *dst_value)
{
    const cv_schema_node_t *n = &self->nodes[node];
    cv_grant_t grant = self->grant[node];
    switch (n->field->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *value = *(char *const *)src_value;
        char *copy = value ? mask_string(self, grant, value) : NULL;
        *(char **)dst_value = copy;
        return copy != NULL;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *value = *(ProtobufCMessage *const *)src_value;
        ProtobufCMessage *copy =
            n->is_map ? copy_map_entry(self, value, grant) : copy_message(self, value, node);
        *(ProtobufCMessage **)dst_value = copy;
        return copy != NULL;
    }
    case PROTOBUF_C_TYPE_DOUBLE:
        *(double *)dst_value = grant == CV_GRANT_ROUND_1KM
                                   ? cv_mask_round_1km(*(const double *)src_value)
                                   : *(const double *)src_value;
        return true;
    case PROTOBUF_C_TYPE_FLOAT:
        *(float *)dst_value = grant == CV_GRANT_ROUND_1KM
                                  ? (float)cv_mask_round_1km(*(const float *)src_value)
                                  : *(const float *)src_value;
        return true;
    case PROTOBUF_C_TYPE_BYTES: /* no report field is bytes: withhold rather than guess */
        return false;
    default:
        memcpy(dst_value, src_value, cv_slot_size(n->field->type));
        return true;
    }
}

static bool field_present(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f);

static bool message_empty(const ProtobufCMessage *msg)
{
    for (unsigned i = 0; i < msg->descriptor->n_fields; i++)
        if (field_present(msg, &msg->descriptor->fields[i]))
            return false;
    return true;
}

/*  Whether a sub-message (at src_value) that held something is left with
 *  nothing (its copy at dst_value, or a packed length of 0): every field
 *  it held is withheld. Sent empty, it would still say that it was there
 *  (a second subject, a source), so it is left out as its fields are. One
 *  empty in the report goes as it is, as the report given whole does. */
static bool emptied(const cv_schema_node_t *n, const void *src_value, const void *dst_value,
                    size_t packed_len)
{
    if (n->field->type != PROTOBUF_C_TYPE_MESSAGE || n->is_map)
        return false;
    if (dst_value ? !message_empty(*(ProtobufCMessage *const *)dst_value) : packed_len != 0)
        return false;
    return !message_empty(*(ProtobufCMessage *const *)src_value);
}

/*  A field marking names a field and its level. One that names a field
 *  nothing of which goes to the recipient would tell it that the field
 *  exists and how it is marked: it is left out, as that field is. What
 *  goes is what the view holds (given[], mark_given), not what is granted:
 *  a value that fails its mask, a sub-message left with nothing, a field
 *  the report lacks are not given. A marking of field_markings itself goes
 *  with it as granted. (One naming no field of the schema names nothing,
 *  and goes as it is.) */
static bool marking_hidden(const cv_decision_t *self, int node, size_t index)
{
    if (node != self->markings_node)
        return false;
    /* the grants, and so the levels and the nodes marked, are this report's */
    assert(self->grants_for == self->report && index < self->report->n_field_markings);
    int marked = self->marked[index];
    if (marked < 0)
        return false;
    bool markings = marked >= node && marked < self->nodes[node].end;
    return !(markings ? self->granted[marked] : self->given[marked]);
}

/*  Whether text, granted as grant, goes: a mask that does not fit the
 *  value withholds it (mask_into). */
static bool gives_text(cv_decision_t *self, cv_grant_t grant, const char *text)
{
    if (!text)
        return false;
    if (grant == CV_GRANT_SHARE || grant == CV_GRANT_PSEUDONYMISE)
        return true; /* they fit every value */
    size_t len = strlen(text);
    char small[CV_MASK_MAX];
    char *out =
        grant == CV_GRANT_INITIALS && 2 * len + 1 > sizeof small ? malloc(2 * len + 1) : small;
    if (!out)
        abort();
    bool fits = mask_into(self, grant, text, len, out);
    if (out != small)
        free(out);
    return fits;
}

static bool mark_given(cv_decision_t *self, const ProtobufCMessage *src, int parent);

/*  Whether one value of node's field puts something in the view, as
 *  copy_value and emptied decide; marks given[] under it. */
/*  Whether one value of a leaf's field (a map is one), granted as grant,
 *  puts something in the view. */
static bool gives_leaf_value(cv_decision_t *self, const cv_schema_node_t *n, cv_grant_t grant,
                             const void *value)
{
    switch (n->field->type) {
    case PROTOBUF_C_TYPE_STRING:
        return gives_text(self, grant, *(char *const *)value);
    case PROTOBUF_C_TYPE_MESSAGE: { /* a map: its entries' values */
        const ProtobufCMessage *msg = *(ProtobufCMessage *const *)value;
        if (!msg)
            return false;
        const ProtobufCMessageDescriptor *d = msg->descriptor;
        const char *key = *(char *const *)((const char *)msg + d->fields[0].offset);
        const char *text = *(char *const *)((const char *)msg + d->fields[1].offset);
        return key && gives_text(self, grant, text);
    }
    case PROTOBUF_C_TYPE_BYTES: /* withheld, as in copy_value */
        return false;
    default:
        return true;
    }
}

static bool gives_value(cv_decision_t *self, int node, const void *value)
{
    const cv_schema_node_t *n = &self->nodes[node];
    if (n->field->type == PROTOBUF_C_TYPE_MESSAGE && !n->is_map) {
        const ProtobufCMessage *msg = *(ProtobufCMessage *const *)value;
        /* one empty as published goes as it is */
        return msg && (mark_given(self, msg, node) || message_empty(msg));
    }
    return gives_leaf_value(self, n, (cv_grant_t)self->grant[node], value);
}

/*  given[]: the fields of src (a message at parent) of which the view
 *  holds a value, so that marking_hidden keeps back the markings of those
 *  granted but not given. True when src gives anything (of the fields
 *  walked: settle_given says which). Worked out only
 *  for a report whose markings go, before the view is built or packed
 *  (which walks back to front, the markings before the fields they name). */
static bool mark_given(cv_decision_t *self, const ProtobufCMessage *src, int parent)
{
    bool any = false;
    int node = parent + 1;
    for (unsigned i = 0; i < src->descriptor->n_fields; i++, node = self->nodes[node].end) {
        const ProtobufCFieldDescriptor *f = self->nodes[node].field;
        if (!self->granted[node] || !self->walked[node] || node == self->markings_node ||
            !field_present(src, f))
            continue;
        const char *member = (const char *)src + f->offset;
        bool gives = false;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)((const char *)src + f->quantifier_offset);
            const char *values = *(char *const *)member;
            for (size_t k = 0; k < n; k++) /* each: it marks the fields under it */
                gives |= gives_value(self, node, values + k * cv_slot_size(f->type));
        } else {
            gives = gives_value(self, node, member);
        }
        self->given[node] |= gives;
        any |= gives;
    }
    return any;
}

enum { WALK_NONE, WALK_TO, WALK_ALL };

/*  Whether node lies under field_markings, whose own markings go as granted. */
static bool in_markings(const cv_decision_t *self, int node)
{
    int m = self->markings_node;
    return node >= m && node < self->nodes[m].end;
}

/*  given[] for the report under the grants, when its markings go. Only
 *  given[] of a node marked and granted is ever read (marking_hidden: one
 *  not granted is not given), so the walk goes down to those alone, and
 *  all the way under each (a sub-message is given when anything under it
 *  is); it is skipped when there is none, as for a recipient not cleared
 *  for what is marked. */
static void settle_given(cv_decision_t *self)
{
    const Caveat__Report *report = self->report;
    if (report->n_field_markings == 0 || self->markings_node < 0 ||
        !self->granted[self->markings_node])
        return;
    memset(self->given, 0, self->size);
    memset(self->walked, WALK_NONE, self->size);
    bool any = false;
    for (size_t m = 0; m < report->n_field_markings; m++) {
        int marked = self->marked[m];
        if (marked < 0 || !self->granted[marked] || in_markings(self, marked))
            continue;
        any = true;
        memset(self->walked + marked, WALK_ALL, (size_t)(self->nodes[marked].end - marked));
        for (int i = 0; i < marked; i++) /* the nodes that hold it, on the way */
            if (self->nodes[i].end > marked && self->walked[i] == WALK_NONE)
                self->walked[i] = WALK_TO;
    }
    if (any)
        mark_given(self, &report->base, -1);
}

static void settle_grants(cv_decision_t *self);

/*  What the walk for an entry looks at: the grants that decide the view
 *  (final: the entries' union with restrictions applied, or the one
 *  entry's row), the entry's own row, and its cap when fields are raised. */
typedef struct {
    const uint8_t *final, *row;
    int cap;
    bool raised;
} entry_walk_t;

/*  Whether src (a message at node parent) holds a value the view gives of
 *  a leaf the entry grants within its cap, as mark_given decides what the
 *  view holds; the first found ends the walk, so that an entry granting a
 *  field most reports have costs a field or two. */
static bool gives_of_entry(cv_decision_t *self, const ProtobufCMessage *src, int parent,
                           const entry_walk_t *w)
{
    int node = parent + 1;
    for (unsigned i = 0; i < src->descriptor->n_fields; i++, node = self->nodes[node].end) {
        const cv_schema_node_t *n = &self->nodes[node];
        const ProtobufCFieldDescriptor *f = n->field;
        bool leaf = self->kind[node] == NODE_LEAF, inner = self->kind[node] == NODE_INNER;
        if ((!leaf && !inner) || node == self->markings_node || !field_present(src, f))
            continue; /* the envelope goes with every delivery: it releases nothing */
        if (leaf && (!goes(w->row[node]) || !goes(w->final[node]) ||
                     (w->raised && self->field_level[node] > w->cap)))
            continue;
        bool repeated = f->label == PROTOBUF_C_LABEL_REPEATED;
        size_t count = repeated ? *(const size_t *)((const char *)src + f->quantifier_offset) : 1;
        const char *values = (const char *)src + f->offset;
        if (repeated)
            values = *(char *const *)values;
        for (size_t k = 0; k < count; k++) {
            const void *value = values + k * (repeated ? cv_slot_size(f->type) : 0);
            const ProtobufCMessage *msg = inner ? *(ProtobufCMessage *const *)value : NULL;
            if (leaf ? gives_leaf_value(self, n, (cv_grant_t)w->final[node], value)
                     : msg && gives_of_entry(self, msg, node, w))
                return true;
        }
    }
    return false;
}

/*  Whether matched entry e grants, within its cap, a field the view holds. */
static bool entry_gives(cv_decision_t *self, int e, const uint8_t *final, bool raised)
{
    entry_walk_t w = {final, self->policy->grants + (size_t)e * self->size,
                      entry_cap(self, &self->policy->entries[e]), raised};
    return gives_of_entry(self, &self->report->base, -1, &w);
}

/*  Whether the view holds a value of the field at node as the report has
 *  it, and the recipient can tell: granted as it is, there, and masked by
 *  nothing in the policy (a masked value may be the same bytes as another
 *  report's value shared as it is: "b. t." is "bomb threat"'s initials). A
 *  field absent or masked shows nothing of what an entry matched on. */
static bool shown_as_is(const cv_decision_t *self, const uint8_t *final, int node)
{
    const Caveat__Report *report = self->report;
    if (node < 0 || final[node] != CV_GRANT_SHARE || self->policy->masked_somewhere[node])
        return false;
    if (node == self->indicators_node)
        return report->n_indicators > 0;
    const char *text = node == self->area_node      ? report->area
                       : node == self->summary_node ? report->summary
                                                    : report->narrative;
    return text && *text;
}

/*  Whether a screening entry's match holds on what the view shows: the
 *  category (the envelope), one of its indicators in the indicators, or
 *  one of its keywords in the summary or narrative, each as the view holds
 *  it. */
static bool match_shown(const cv_decision_t *self, const cv_entry_t *entry, const uint8_t *final)
{
    return screen_matches_in(entry, self->report, self->category,
                             shown_as_is(self, final, self->indicators_node),
                             shown_as_is(self, final, self->summary_node),
                             shown_as_is(self, final, self->narrative_node));
}

/*  Whether the view shows where the report's area stands to the
 *  recipient's: it holds the area, or the recipient has every area. */
static bool area_shown(const cv_decision_t *self, const uint8_t *final)
{
    return self->policy->agencies[self->recipient].pub.all_areas ||
           shown_as_is(self, final, self->area_node);
}

/*  Whether the view shows that matched entry e matched: beyond the
 *  envelope, a same_area entry matches on the area and a screening entry
 *  on its match. */
static bool match_of_entry_shown(const cv_decision_t *self, int e, const uint8_t *final)
{
    const cv_entry_t *entry = &self->policy->entries[e];
    if (entry->same_area && !area_shown(self, final))
        return false;
    return !entry->screening || match_shown(self, entry, final);
}

/*  Whether the view holds every field marking there is of the fields it
 *  holds: field_markings goes as it is, so the levels that cap entries
 *  are the recipient's to see. */
static bool markings_shown(const cv_decision_t *self, const uint8_t *final)
{
    int m = self->markings_node;
    for (int i = m + 1; m >= 0 && i < self->nodes[m].end; i++)
        if (self->kind[i] == NODE_LEAF && final[i] != CV_GRANT_SHARE)
            return false;
    return m >= 0;
}

static bool released_entry(const cv_decision_t *self, int e)
{
    for (int r = 0; r < self->n_released; r++)
        if (self->released[r] == e)
            return true;
    return false;
}

/*  Adds entry e to the count n of entries that may have released the
 *  view (possible_entries), the first kept in *only: a notice, one
 *  granting a field the view holds (caps aside: markings may be hidden),
 *  or, when the view holds nothing but the envelope (bare), any granting
 *  something, since a grant delivers whether or not the report has the
 *  field (rule 1). */
static int count_possible(cv_decision_t *self, const uint8_t *final, bool bare, int e, int *only,
                          int n)
{
    const cv_entry_t *entry = &self->policy->entries[e];
    if (!from_ok(self, e) || (n == 1 && *only == e))
        return n;
    /* one that released the report counts without a walk: a notice, or
     * one giving a field the view holds */
    if (!(entry->notice || released_entry(self, e) ||
          (bare ? entry->grants_any : entry_gives(self, e, final, false))))
        return n;
    if (n == 0)
        *only = e;
    return n + 1;
}

/*  Whether a screening entry may have matched, for all the view shows:
 *  its match holds on what is shown, or part of what it looks at is not
 *  shown. */
static bool screen_may_match(const cv_decision_t *self, const cv_entry_t *entry,
                             const uint8_t *final)
{
    return match_shown(self, entry, final) ||
           (entry->n_match_indicators > 0 && !shown_as_is(self, final, self->indicators_node)) ||
           (entry->n_match_keywords > 0 && (!shown_as_is(self, final, self->summary_node) ||
                                            !shown_as_is(self, final, self->narrative_node)));
}

/*  How many entries (0, 1, or 2 for more) may have released a delivery of
 *  this view, as far as the envelope and the view show: those that
 *  deliver something (a grant or a notice) to the recipient, for the
 *  report's category, originator and level, whether or not a same_area
 *  entry's area or a screening entry's match held where the view does not
 *  show it. The one, when there is one, in *only. */
static int possible_entries(cv_decision_t *self, const uint8_t *final, int *only)
{
    const cv_policy_t *p = self->policy;
    /* a field the view holds was given by an entry that released the
     * report, and a notice grants none: bare when notices alone did */
    bool bare = true;
    for (int r = 0; r < self->n_released && bare; r++)
        bare = p->entries[self->released[r]].notice;
    const cv_agency_hot_t *to = &p->agency_hot[self->recipient];
    bool area_may = !area_shown(self, final) || self->area_ok;
    const cv_rule_index_t *index = &p->type_rules[to->type_id];
    int ranks = p->n_levels - self->level, n = 0;
    for (int same_area = 0; same_area <= (int)area_may && n < 2; same_area++) {
        int bucket = cv_rule_bucket(p, self->category, same_area, 0);
        for (int i = index->buckets[bucket]; i < index->buckets[bucket + ranks] && n < 2; i++)
            n = count_possible(self, final, bare, index->rules[i], only, n);
    }
    const cv_listed_t *listed = p->listed_pool + to->listed_first;
    for (int i = 0; i < to->n_listed && n < 2; i++)
        if ((listed[i].categories >> self->category & 1) && (!listed[i].same_area || area_may) &&
            self->level <= listed[i].max_level)
            n = count_possible(self, final, bare, listed[i].rule, only, n);
    for (int i = 0; i < to->n_screens && n < 2; i++) {
        int e = p->screen_pool[to->screen_first + i];
        const cv_entry_t *entry = &p->entries[e];
        if ((!entry->same_area || area_may) && self->level <= entry->max_level &&
            screen_may_match(self, entry, final))
            n = count_possible(self, final, bare, e, only, n);
    }
    return n;
}

/*  Whether entry e gives the recipient a field as far as the view shows:
 *  a notice, or a field the view holds that e grants within its cap, the
 *  cap counting only where the view shows the markings (hidden, they cap
 *  nothing here). released: what settle_released found. */
static bool gives_shown(cv_decision_t *self, int e, const uint8_t *final, bool raised, bool capped,
                        bool released)
{
    if (self->policy->entries[e].notice)
        return true;
    return raised && !capped ? entry_gives(self, e, final, false) : released;
}

/*  The entries the recipient is told with the delivery (Delivery.rules),
 *  worked out from the view alone, so that two deliveries of the same view
 *  name the same entries whatever was withheld: of the matched entries,
 *  those whose match the view shows (match_of_entry_shown) and that give
 *  a field as far as it shows (gives_shown). When none is shown so, the
 *  delivery alone says that some entry matched: if one entry alone could
 *  have released this view (possible_entries), it is that one, and it is
 *  named; otherwise which of them did would tell what was withheld, and
 *  none is. */
static void entries_told(cv_decision_t *self, const uint8_t *final, bool raised)
{
    self->n_told = 0;
    if (self->n_released == 0)
        return; /* nothing beyond the envelope: none is named (rule 1) */
    while (self->cap_told < self->n_matched)
        self->told = grow(self->told, &self->cap_told, sizeof *self->told);
    bool capped = raised && markings_shown(self, final);
    for (int m = 0, r = 0; m < self->n_matched; m++) {
        int e = self->matched[m];
        bool released = r < self->n_released && self->released[r] == e;
        r += released;
        if (match_of_entry_shown(self, e, final) &&
            gives_shown(self, e, final, raised, capped, released))
            self->told[self->n_told++] = e;
    }
    int only = -1;
    if (self->n_told > 0 || possible_entries(self, final, &only) != 1)
        return;
    /* it released the report, since nothing else could have: so it gives
     * as far as the view shows too (gives_shown says yes to every entry
     * that released it) */
    assert(released_entry(self, only));
    self->told[self->n_told++] = only;
}

/*  The entries that released the report (the audit log's "rules", and
 *  what explain names) and whose first screening entry names its feed:
 *  of those that matched, the notices, and those granting (within their
 *  max_level and the recipient's clearance) a field the view holds. The
 *  view is what the recipient sees anyway; that an entry matched is not,
 *  and screening entries match on indicators and keywords, rules with
 *  same_area on the area, markings decide fields' levels. So an entry
 *  that only denies, whose grants are capped, denied by another entry or
 *  a restriction, or fall on fields the report lacks or whose masks do
 *  not fit, released nothing and is not named: naming it would tell the
 *  recipient what the withheld fields hold. A delivery whose view holds
 *  nothing but the envelope, and no notice, names none; field_markings is
 *  not a field an entry is named for (its values go with the fields they
 *  mark). One entry with no marking or restriction walks its own row, the
 *  grants; otherwise they are worked out first. The walk stops at the
 *  first field given. What the recipient is told is worked out from
 *  these (entries_told). */
static void settle_released(cv_decision_t *self)
{
    if (self->released_done)
        return;
    self->released_done = true;
    self->n_released = 0;
    self->n_told = 0;
    if (!self->delivered)
        return;
    sort_matched(self);
    while (self->cap_released < self->n_matched)
        self->released = grow(self->released, &self->cap_released, sizeof *self->released);
    const cv_entry_t *entries = self->policy->entries;
    /* one entry, no marking, no restriction: its row is the grants, and
     * nothing need be worked out (the hot path: a rule of "*": share) */
    int alone = cv_decision_grants_entry(self);
    const uint8_t *final = alone >= 0 ? self->policy->grants + (size_t)alone * self->size : NULL;
    if (!final) {
        settle_grants(self);
        final = self->grant;
    }
    bool raised = self->report->n_field_markings > 0 && compute_field_levels(self);
    for (int m = 0; m < self->n_matched; m++) {
        int e = self->matched[m];
        if (entries[e].notice || entry_gives(self, e, final, raised))
            self->released[self->n_released++] = e;
    }
    entries_told(self, final, raised);
}

static void copy_repeated(cv_decision_t *self, int node, const ProtobufCMessage *src,
                          ProtobufCMessage *dst)
{
    const ProtobufCFieldDescriptor *f = self->nodes[node].field;
    size_t n = *(const size_t *)((const char *)src + f->quantifier_offset);
    const char *from = *(char *const *)((const char *)src + f->offset);
    size_t size = cv_slot_size(f->type);
    if (n == 0)
        return;
    prefetch_values(f, from, n);
    char *to = view_alloc(self, n * size);
    size_t kept = 0, hidden = 0;
    for (size_t i = 0; i < n; i++)
        if (marking_hidden(self, node, i))
            hidden++;
        else if (!copy_value(self, node, from + i * size, to + kept * size))
            continue;
        else if (emptied(&self->nodes[node], from + i * size, to + kept * size, 0)) {
            view_free(self, *(void **)(to + kept * size)); /* no field: the struct alone */
            hidden++;
        } else
            kept++;
    if (kept == 0) {
        /* every value failed its mask (a message always copies) */
        if (hidden < n)
            self->failed[node] = 1;
        view_free(self, to);
        return;
    }
    *(size_t *)((char *)dst + f->quantifier_offset) = kept;
    *(char **)((char *)dst + f->offset) = to;
}

static void copy_field(cv_decision_t *self, int node, const ProtobufCMessage *src,
                       ProtobufCMessage *dst)
{
    const ProtobufCFieldDescriptor *f = self->nodes[node].field;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        copy_repeated(self, node, src, dst);
        return;
    }
    const char *from = (const char *)src + f->offset;
    bool pointer = f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE;
    if (pointer ? *(void *const *)from == NULL
                : !*(const protobuf_c_boolean *)((const char *)src + f->quantifier_offset))
        return;
    if (!copy_value(self, node, from, (char *)dst + f->offset)) {
        self->failed[node] = 1;
        return;
    }
    if (emptied(&self->nodes[node], from, (char *)dst + f->offset, 0)) {
        view_free(self, *(void **)((char *)dst + f->offset)); /* no field: the struct alone */
        *(void **)((char *)dst + f->offset) = NULL;
        return;
    }
    if (!pointer)
        *(protobuf_c_boolean *)((char *)dst + f->quantifier_offset) = 1;
}

static ProtobufCMessage *copy_message(cv_decision_t *self, const ProtobufCMessage *src, int parent)
{
    const ProtobufCMessageDescriptor *d = src->descriptor;
    ProtobufCMessage *dst = view_alloc(self, d->sizeof_message);
    protobuf_c_message_init(d, dst);
    prefetch_fields(self, src, parent);
    /* pre-order: a message's first field is the next node, and each
     * field's next sibling is where its subtree ends */
    int node = parent + 1;
    for (unsigned i = 0; i < d->n_fields; i++, node = self->nodes[node].end)
        if (self->granted[node])
            copy_field(self, node, src, dst);
    return dst;
}

/*  What every view starts with: the grants, and explanations reset. */
static bool start_view(cv_decision_t *self, const Caveat__Report *report)
{
    if (!self->delivered)
        return false;
    self->report = report;
    self->outcome_done = false;
    if (self->grants_for != report) /* decide may have worked them out already */
        compute_grants(self);
    else if (!self->grants_restricted)
        restrict_grants(self);
    settle_given(self);
    self->viewed = true;
    return true;
}

Caveat__Report *cv_decision_view(cv_decision_t *self, const Caveat__Report *report)
{
    if (!start_view(self, report))
        return NULL;
    return (Caveat__Report *)copy_message(self, &report->base, -1);
}

/* ------------------------------------------------------------------------ */
/*  Packing a view straight from the report: the bytes that
 *  protobuf_c_message_pack writes for the view cv_decision_view builds,
 *  without building it. Written back to front, so that a nested message's
 *  length is known when its prefix is written: one pass over the report,
 *  where a view then protobuf-c take three (copy, size, write; and
 *  protobuf-c sizes each nested message again before writing it). The walk
 *  is copy_message's: the same fields go, masked the same, and nothing
 *  withheld is read into the output. For optional and unpacked repeated
 *  fields, all the report has; encodable() leaves the rest to protobuf-c. */

static bool encodable(const ProtobufCMessageDescriptor *d, int depth)
{
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if ((f->label != PROTOBUF_C_LABEL_OPTIONAL && f->label != PROTOBUF_C_LABEL_REPEATED) ||
            (f->flags & (PROTOBUF_C_FIELD_FLAG_ONEOF | PROTOBUF_C_FIELD_FLAG_PACKED)) ||
            (f->type == PROTOBUF_C_TYPE_MESSAGE &&
             (depth > 16 || !encodable(f->descriptor, depth + 1))))
            return false;
    }
    return true;
}

static int wire_type(ProtobufCType type)
{
    switch (type) {
    case PROTOBUF_C_TYPE_DOUBLE:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return 1;
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_BYTES:
    case PROTOBUF_C_TYPE_MESSAGE:
        return 2;
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return 5;
    default:
        return 0;
    }
}

/*  A varint type's value as protobuf-c encodes it: int32 sign-extended,
 *  sint zigzagged. */
static uint64_t varint_of(ProtobufCType type, const void *value)
{
    switch (type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_ENUM:
        return (uint64_t)(int64_t) * (const int32_t *)value;
    case PROTOBUF_C_TYPE_SINT32: {
        int32_t v = *(const int32_t *)value;
        return v < 0 ? -(uint32_t)v * 2 - 1 : (uint32_t)v * 2;
    }
    case PROTOBUF_C_TYPE_UINT32:
        return *(const uint32_t *)value;
    case PROTOBUF_C_TYPE_SINT64: {
        int64_t v = *(const int64_t *)value;
        return v < 0 ? -(uint64_t)v * 2 - 1 : (uint64_t)v * 2;
    }
    case PROTOBUF_C_TYPE_BOOL:
        return *(const protobuf_c_boolean *)value ? 1 : 0;
    default: /* int64, uint64 */
        return *(const uint64_t *)value;
    }
}

static void grow_out(cv_decision_t *self, size_t n)
{
    size_t cap = self->out_cap ? 2 * self->out_cap : 4096;
    while (cap - self->used < n)
        cap *= 2;
    uint8_t *grown = malloc(cap);
    if (!grown)
        abort();
    if (self->used) /* the written bytes stay at the end */
        memcpy(grown + cap - self->used, self->out + self->out_cap - self->used, self->used);
    free(self->out);
    self->out = grown;
    self->out_cap = cap;
}

/*  Room for n bytes just before those written so far. */
static inline uint8_t *room(cv_decision_t *self, size_t n)
{
    if (self->out_cap - self->used < n)
        grow_out(self, n);
    self->used += n;
    return self->out + self->out_cap - self->used;
}

static void prepend(cv_decision_t *self, const void *bytes, size_t n)
{
    if (n) /* an empty string at the start: out may still be NULL */
        memcpy(room(self, n), bytes, n);
}

static void prepend_varint(cv_decision_t *self, uint64_t v)
{
    size_t n = 1;
    for (uint64_t rest = v; rest >= 0x80; rest >>= 7)
        n++;
    uint8_t *at = room(self, n);
    for (; v >= 0x80; v >>= 7)
        *at++ = (uint8_t)(v | 0x80);
    *at = (uint8_t)v;
}

static void prepend_fixed(cv_decision_t *self, uint64_t v, int n)
{
    uint8_t *at = room(self, (size_t)n);
    for (int i = 0; i < n; i++, v >>= 8) /* little-endian, whatever the host */
        at[i] = (uint8_t)v;
}

static void prepend_tag(cv_decision_t *self, const ProtobufCFieldDescriptor *f)
{
    prepend_varint(self, (uint64_t)f->id << 3 | (uint64_t)wire_type(f->type));
}

/*  A string as granted, length-prefixed; false, nothing written, when it
 *  cannot be masked. */
static bool prepend_string(cv_decision_t *self, cv_grant_t grant, const char *text)
{
    size_t len = strlen(text);
    char small[CV_MASK_MAX];
    const char *masked = text;
    if (grant != CV_GRANT_SHARE) {
        char *out = 2 * len + 1 <= sizeof small ? small : arena_alloc(self, 2 * len + 1);
        if (!mask_into(self, grant, text, len, out))
            return false;
        masked = out;
        len = strlen(out);
    }
    prepend(self, masked, len);
    prepend_varint(self, len);
    return true;
}

static void pack_message(cv_decision_t *self, const ProtobufCMessage *src, int parent);

/*  A map entry, length-prefixed: the key as is, the value as granted. */
static bool prepend_map_entry(cv_decision_t *self, const ProtobufCMessage *src, cv_grant_t grant)
{
    const ProtobufCMessageDescriptor *d = src->descriptor;
    const char *key = *(char *const *)((const char *)src + d->fields[0].offset);
    const char *value = *(char *const *)((const char *)src + d->fields[1].offset);
    size_t end = self->used;
    if (!key || !value || !prepend_string(self, grant, value))
        return false;
    prepend_tag(self, &d->fields[1]);
    prepend_string(self, CV_GRANT_SHARE, key);
    prepend_tag(self, &d->fields[0]);
    prepend_varint(self, self->used - end);
    return true;
}

/*  One value of node's field as granted, without its tag; false, nothing
 *  written, when it is withheld (copy_value's rules). */
static bool prepend_value(cv_decision_t *self, int node, const char *value)
{
    const cv_schema_node_t *n = &self->nodes[node];
    cv_grant_t grant = self->grant[node];
    switch (n->field->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *text = *(char *const *)value;
        return text && prepend_string(self, grant, text);
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *msg = *(ProtobufCMessage *const *)value;
        if (!msg || n->is_map)
            return msg && prepend_map_entry(self, msg, grant);
        size_t end = self->used;
        pack_message(self, msg, node);
        prepend_varint(self, self->used - end);
        return true;
    }
    case PROTOBUF_C_TYPE_DOUBLE: {
        double v = *(const double *)value;
        uint64_t bits;
        v = grant == CV_GRANT_ROUND_1KM ? cv_mask_round_1km(v) : v;
        memcpy(&bits, &v, sizeof bits);
        prepend_fixed(self, bits, 8);
        return true;
    }
    case PROTOBUF_C_TYPE_FLOAT: {
        float v = *(const float *)value;
        uint32_t bits;
        v = grant == CV_GRANT_ROUND_1KM ? (float)cv_mask_round_1km(v) : v;
        memcpy(&bits, &v, sizeof bits);
        prepend_fixed(self, bits, 4);
        return true;
    }
    case PROTOBUF_C_TYPE_BYTES: /* withheld, as in copy_value */
        return false;
    default:
        if (wire_type(n->field->type) == 1)
            prepend_fixed(self, *(const uint64_t *)value, 8);
        else if (wire_type(n->field->type) == 5)
            prepend_fixed(self, *(const uint32_t *)value, 4);
        else
            prepend_varint(self, varint_of(n->field->type, value));
        return true;
    }
}

static void pack_field(cv_decision_t *self, int node, const ProtobufCMessage *src)
{
    const ProtobufCFieldDescriptor *f = self->nodes[node].field;
    const char *member = (const char *)src + f->offset;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        size_t n = *(const size_t *)((const char *)src + f->quantifier_offset), kept = 0,
               hidden = 0;
        const char *values = *(char *const *)member;
        prefetch_values(f, values, n);
        for (size_t i = n; i-- > 0;) {
            const char *value = values + i * cv_slot_size(f->type);
            size_t before = self->used;
            if (marking_hidden(self, node, i)) {
                hidden++;
            } else if (!prepend_value(self, node, value)) {
                continue;
            } else if (emptied(&self->nodes[node], value, NULL, self->used - before - 1)) {
                self->used = before; /* its length, 0, taken back: as copy_repeated */
                hidden++;
            } else {
                prepend_tag(self, f);
                kept++;
            }
        }
        if (n > 0 && kept == 0 && hidden < n)
            self->failed[node] = 1; /* as copy_repeated */
        return;
    }
    bool pointer = f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE;
    if (pointer ? *(void *const *)member == NULL
                : !*(const protobuf_c_boolean *)((const char *)src + f->quantifier_offset))
        return;
    size_t before = self->used;
    if (!prepend_value(self, node, member))
        self->failed[node] = 1;
    else if (emptied(&self->nodes[node], member, NULL, self->used - before - 1))
        self->used = before; /* as copy_field */
    else
        prepend_tag(self, f);
}

/*  src's granted fields, last to first. */
static void pack_message(cv_decision_t *self, const ProtobufCMessage *src, int parent)
{
    prefetch_fields(self, src, parent);
    for (int node = self->last_child[parent + 1]; node >= 0; node = self->prev_sibling[node])
        if (self->granted[node])
            pack_field(self, node, src);
}

size_t cv_decision_pack(cv_decision_t *self, const Caveat__Report *report, uint8_t *buf, size_t cap)
{
    if (!self->encodable) { /* a schema the direct writer does not handle */
        Caveat__Report *view = cv_decision_view(self, report);
        size_t size = view ? protobuf_c_message_get_packed_size(&view->base) : 0;
        if (view && size <= cap)
            protobuf_c_message_pack(&view->base, buf);
        if (view)
            protobuf_c_message_free_unpacked(&view->base, NULL);
        return size;
    }
    arena_reset(self); /* scratch for long initials */
    if (!start_view(self, report))
        return 0;
    self->used = 0;
    pack_message(self, &report->base, -1);
    if (self->used <= cap && self->used)
        memcpy(buf, self->out + self->out_cap - self->used, self->used);
    return self->used;
}

/* ------------------------------------------------------------------------ */
/*  Text on demand: reasons and field explanations.                         */

static char *format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *format(const char *fmt, ...)
{
    char *text = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&text, fmt, ap) < 0)
        abort();
    va_end(ap);
    return text;
}

static const char *str(const char *s)
{
    return s ? s : "";
}

/*  True when restriction r denies a field that a matched entry shares or
 *  masks: it took part in removing what the entries granted. */
static bool removes_a_grant(const cv_decision_t *self, int r)
{
    const cv_policy_t *p = self->policy;
    const uint8_t *denied = p->restrictions[r].grants;
    for (int m = 0; m < self->n_matched; m++) {
        const uint8_t *granted = p->entries[self->matched[m]].grants;
        for (size_t i = 0; i < self->size; i++)
            if (self->kind[i] == NODE_LEAF && denied[i] == CV_GRANT_DENY && goes(granted[i]))
                return true;
    }
    return false;
}

/*  "restriction A removes ...", or "restrictions A, B remove ...": the
 *  restrictions that denied something the entries granted. */
static char *restricted_all_text(const cv_decision_t *self)
{
    char *names = NULL;
    size_t size = 0;
    int count = 0;
    FILE *out = open_memstream(&names, &size);
    if (!out)
        abort();
    for (int r = 0; r < self->n_restricted; r++)
        if (removes_a_grant(self, self->restricted[r]))
            fprintf(out, "%s%s", count++ ? ", " : "",
                    self->policy->restrictions[self->restricted[r]].name);
    if (fclose(out) != 0)
        abort();
    char *text = format("%s %s remove%s every field the matching rules and screening entries "
                        "grant here",
                        count > 1 ? "restrictions" : "restriction", names, count > 1 ? "" : "s");
    free(names);
    return text;
}

/*  "[PATH: ]denied by restriction X" or "[PATH: ]mask:year by restriction X":
 *  a field's explanation, and with its path a reason. */
static char *restricted_text(const cv_decision_t *self, int node, const char *path)
{
    outcome_t o = self->outcome[node];
    return format("%s%s%s by restriction %s", path ? path : "", path ? ": " : "",
                  o.grant == CV_GRANT_DENY ? "denied" : cv_grant_name(o.grant),
                  self->policy->restrictions[o.entry].name);
}

static char *reason_text(const cv_decision_t *self, const reason_t *r)
{
    const cv_policy_t *p = self->policy;
    const Caveat__Report *report = self->report;
    const cv_agency_t *to = cv_policy_agency(p, self->recipient);
    const cv_agency_t *from = cv_policy_agency(p, self->originator);
    const char *entry = r->entry >= 0 ? p->entries[r->entry].name : "";
    const char *kind = r->entry >= 0 && p->entries[r->entry].screening ? "screening" : "rule";
    const char *code = report->grading ? str(report->grading->handling_code) : "";
    switch (r->code) {
    case R_UNKNOWN_RECIPIENT:
        return format("recipient is not an agency of this protocol");
    case R_UNKNOWN_ORIGINATOR:
        return format("originator '%s' is not an agency of this protocol", str(report->originator));
    case R_OWN_REPORT:
        return format("the originator never receives its own report back");
    case R_UNKNOWN_CATEGORY:
        return format("unknown category '%s'", str(report->category));
    case R_UNKNOWN_LEVEL:
        return format("unknown handling level '%s'", str(report->handling_level));
    case R_ABOVE_CLEARANCE:
        return format("handling level %s is above the recipient's clearance %s",
                      p->levels[self->level], p->levels[to->clearance]);
    case R_UNKNOWN_CODE:
        return format("handling code '%s' is not defined by this protocol", code);
    case R_CODE_RECIPIENT:
        return format("handling code %s does not allow %s (type %s)", code, to->id, to->type);
    case R_CODE_ORGANISATION:
        return format("handling code %s: only agencies of the originator's organisation (%s)", code,
                      from->organisation);
    case R_CODE_APPROVAL:
        return format("handling code %s: held until the originator approves a release to %s", code,
                      to->id);
    case R_ENTRY_FROM:
        return format("%s %s: does not cover originator %s (type %s)", kind, entry, from->id,
                      from->type);
    case R_ENTRY_AREA:
        return format("%s %s: area '%s' is not among the recipient's areas", kind, entry,
                      str(report->area));
    case R_ENTRY_LEVEL:
        return format("%s %s: handling level %s is above its max_level %s", kind, entry,
                      p->levels[self->level], p->levels[p->entries[r->entry].max_level]);
    case R_SCREEN_NO_MATCH:
        return format("screening %s: the report matches none of its categories, indicators "
                      "or keywords",
                      entry);
    case R_NOTHING_GRANTED:
        return format("the matching rules and screening entries share or mask no field here: "
                      "deny never delivers (fields: {} sends a notice on purpose)");
    case R_RESTRICTED_ALL:
        return restricted_all_text(self);
    case R_NO_ENTRY:
        return format("no rule releases category %s from %s (%s) to %s (%s)", str(report->category),
                      from->id, from->type, to->id, to->type);
    }
    return format("unknown reason");
}

static void add_reason_text(cv_decision_t *self, char *text)
{
    char **grown = realloc(self->reason_text, (size_t)(self->n_reason_text + 1) * sizeof *grown);
    if (!grown)
        abort();
    self->reason_text = grown;
    grown[self->n_reason_text++] = text;
}

static void mark_present(cv_decision_t *self, const ProtobufCMessage *msg, int parent);

static int ascending(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

/*  The candidate rules of the decision's category for the recipient (of
 *  its type, and listed), in policy order, into self->order; returns how
 *  many. */
static int candidate_rules(cv_decision_t *self)
{
    const cv_policy_t *p = self->policy;
    const cv_agency_hot_t *to = &p->agency_hot[self->recipient];
    const cv_rule_index_t *index = &p->type_rules[to->type_id];
    const cv_listed_t *listed = p->listed_pool + to->listed_first;
    int from = index->buckets[cv_rule_bucket(p, self->category, 0, 0)];
    int n = index->buckets[cv_rule_bucket(p, self->category + 1, 0, 0)] - from;
    while (self->cap_order < n + to->n_listed)
        self->order = grow(self->order, &self->cap_order, sizeof *self->order);
    if (n > 0)
        memcpy(self->order, index->rules + from, (size_t)n * sizeof *self->order);
    for (int i = 0; i < to->n_listed; i++)
        if (listed[i].categories >> self->category & 1)
            self->order[n++] = listed[i].rule;
    if (n > 1)
        qsort(self->order, (size_t)n, sizeof *self->order, ascending);
    return n;
}

/*  Why an undelivered report went nowhere: every candidate entry, in policy
 *  order, with the first check it failed; what deciding skipped. */
static void record_near_misses(cv_decision_t *self)
{
    const cv_policy_t *p = self->policy;
    const cv_agency_hot_t *to = &p->agency_hot[self->recipient];
    int n = candidate_rules(self);
    for (int i = 0; i < n; i++)
        entry_applies(self, self->order[i]);
    for (int i = 0; i < to->n_screens; i++) {
        int e = p->screen_pool[to->screen_first + i];
        if (!screen_matches(&p->entries[e], self->report, self->category))
            refuse(self, R_SCREEN_NO_MATCH, e);
        else
            entry_applies(self, e);
    }
    if (self->n_reasons == 0)
        refuse(self, R_NO_ENTRY, -1);
}

static void format_reasons(cv_decision_t *self)
{
    if (self->reasons_done)
        return;
    self->reasons_done = true;
    /* near misses (entries that did not apply) matter only when nothing
     * released the report */
    if (self->scanned && !self->delivered && self->n_reasons == 0)
        record_near_misses(self);
    for (int i = 0; !self->delivered && i < self->n_reasons; i++)
        add_reason_text(self, reason_text(self, &self->reasons[i]));
    if (!self->viewed)
        return;
    /* what capped the view: present fields withheld for their level */
    explain_outcomes(self);
    memset(self->present, 0, self->size);
    mark_present(self, &self->report->base, -1);
    const cv_policy_t *p = self->policy;
    for (int i = 0; i < (int)self->size; i++) {
        why_t why = self->outcome[i].why;
        if (self->present[i] && why == W_RESTRICTED)
            add_reason_text(self, restricted_text(self, i, self->nodes[i].path));
        if (!self->present[i] || (why != W_ABOVE_CLEARANCE && why != W_ABOVE_MAX_LEVEL))
            continue;
        add_reason_text(self, format("%s: marked %s, above %s", self->nodes[i].path,
                                     p->levels[self->field_level[i]],
                                     why == W_ABOVE_CLEARANCE
                                         ? "the recipient's clearance"
                                         : "the max_level of the rules that grant it"));
    }
}

int cv_decision_reason_count(const cv_decision_t *self)
{
    format_reasons((cv_decision_t *)self);
    return self->n_reason_text;
}

const char *cv_decision_reason(const cv_decision_t *self, int index)
{
    format_reasons((cv_decision_t *)self);
    return index >= 0 && index < self->n_reason_text ? self->reason_text[index] : NULL;
}

static bool field_present(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    const char *at = (const char *)msg;
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return *(const size_t *)(at + f->quantifier_offset) > 0;
    if (f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE)
        return *(void *const *)(at + f->offset) != NULL;
    return *(const protobuf_c_boolean *)(at + f->quantifier_offset);
}

static void mark_present(cv_decision_t *self, const ProtobufCMessage *msg, int parent)
{
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    int node = parent + 1;
    for (unsigned i = 0; i < d->n_fields; i++, node = self->nodes[node].end) {
        const cv_schema_node_t *n = &self->nodes[node];
        if (!field_present(msg, n->field))
            continue;
        self->present[node] = 1;
        if (n->is_leaf)
            continue;
        if (n->field->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t count = *(const size_t *)((const char *)msg + n->field->quantifier_offset);
            ProtobufCMessage *const *items =
                *(ProtobufCMessage *const *const *)((const char *)msg + n->field->offset);
            for (size_t k = 0; k < count; k++)
                mark_present(self, items[k], node);
        } else {
            mark_present(self, *(ProtobufCMessage *const *)((const char *)msg + n->field->offset),
                         node);
        }
    }
}

static char *field_why(const cv_decision_t *self, int node)
{
    const cv_policy_t *p = self->policy;
    outcome_t o = self->outcome[node];
    const cv_entry_t *entry = o.entry >= 0 ? &p->entries[o.entry] : NULL;
    const char *kind = entry && entry->screening ? "screening" : "rule";
    switch ((why_t)o.why) {
    case W_ENVELOPE:
        return format("envelope: always travels with a delivered report");
    case W_GRANTED:
        return format("%s %s", kind, entry->name);
    case W_DENIED:
        return format("denied by %s %s", kind, entry->name);
    case W_ABOVE_CLEARANCE:
        return format("marked %s, above the recipient's clearance",
                      p->levels[self->field_level[node]]);
    case W_ABOVE_MAX_LEVEL:
        return format("marked %s, above max_level %s of %s %s", p->levels[self->field_level[node]],
                      p->levels[entry->max_level], kind, entry->name);
    case W_MASK_FAILED:
        return format("a value does not have the shape %s needs; withheld", cv_grant_name(o.grant));
    case W_NOT_DELIVERED:
        return format("not delivered");
    case W_RESTRICTED:
        return restricted_text(self, node, NULL);
    default:
        return format("no matching rule or screening entry grants it");
    }
}

static void format_fields(cv_decision_t *self)
{
    if (self->fields_done)
        return;
    self->fields_done = true;
    memset(self->present, 0, self->size);
    mark_present(self, &self->report->base, -1);
    if (self->viewed)
        explain_outcomes(self);
    else
        for (int i = 0; i < (int)self->size; i++)
            self->outcome[i] = (outcome_t){CV_GRANT_NONE, W_NOT_DELIVERED, -1};
    self->fields = calloc(self->size, sizeof *self->fields);
    self->field_why = calloc(self->size, sizeof *self->field_why);
    if (!self->fields || !self->field_why)
        abort();
    for (int i = 0; i < (int)self->size; i++) {
        if (!self->present[i] || !self->nodes[i].is_leaf)
            continue;
        outcome_t o = self->outcome[i];
        bool withheld = !goes(o.grant) || o.why == W_MASK_FAILED;
        self->field_why[self->n_fields] = field_why(self, i);
        self->fields[self->n_fields] = (cv_field_decision_t){
            .path = self->nodes[i].path,
            .decision = withheld ? "withheld" : cv_grant_name(o.grant),
            .why = self->field_why[self->n_fields],
            .restriction = o.why == W_RESTRICTED ? self->policy->restrictions[o.entry].name : NULL,
        };
        self->n_fields++;
    }
}

int cv_decision_field_count(const cv_decision_t *self)
{
    format_fields((cv_decision_t *)self);
    return self->n_fields;
}

const cv_field_decision_t *cv_decision_field(const cv_decision_t *self, int index)
{
    format_fields((cv_decision_t *)self);
    return index >= 0 && index < self->n_fields ? &self->fields[index] : NULL;
}

/*  The grants of a delivered decision, worked out, and capped by the
 *  restrictions, once. */
static void settle_grants(cv_decision_t *self)
{
    assert(self->delivered);
    if (self->grants_for != self->report)
        compute_grants(self);
    else if (!self->grants_restricted)
        restrict_grants(self);
}

/*  The grants of the last decision, without a view or any text: for the
 *  audit record, which writes what each recipient was given of every
 *  report. The envelope is left out: it goes with every delivery. */
int cv_decision_outcomes(cv_decision_t *self, const char **paths, const char **outcomes, int cap)
{
    const char *withheld = cv_grant_name(CV_GRANT_NONE);
    if (self->delivered)
        settle_grants(self);
    memset(self->present, 0, self->size);
    mark_present(self, &self->report->base, -1);
    int n = 0;
    for (int i = 0; i < (int)self->size; i++) {
        const cv_schema_node_t *node = &self->nodes[i];
        if (!self->present[i] || !node->is_leaf || node->envelope)
            continue;
        if (n < cap) {
            bool given = self->delivered && goes(self->grant[i]);
            paths[n] = node->path;
            outcomes[n] = given ? cv_grant_name(self->grant[i]) : withheld;
        }
        n++;
    }
    return n;
}

int cv_decision_grants_entry(cv_decision_t *self)
{
    /* one entry, no marking to raise a field and no restriction: its row
     * is the grants (compute_grants), known at load */
    if (!self->delivered || self->n_matched != 1 || self->report->n_field_markings != 0)
        return -1;
    ensure_restricted(self);
    return self->n_restricted == 0 ? self->matched[0] : -1;
}

int64_t cv_decision_view_key(cv_decision_t *self)
{
    int entry = cv_decision_grants_entry(self);
    if (entry < 0)
        return -1;
    /* the grants are the entry's row; of the recipient, a view depends
     * on its organisation alone, and only through pseudonyms (mask_into) */
    if (!self->policy->entries[entry].pseudonymises)
        return entry;
    int organisation = self->policy->agencies[self->recipient].org_id;
    return entry + (int64_t)self->policy->n_entries * (1 + (int64_t)organisation);
}

bool cv_decision_shares_all(cv_decision_t *self)
{
    if (!self->delivered)
        return false;
    int entry = cv_decision_grants_entry(self);
    if (entry >= 0)
        return self->policy->entries[entry].shares_all;
    settle_grants(self);
    for (size_t i = 0; i < self->size; i++) {
        const cv_schema_node_t *node = &self->nodes[i];
        if (node->is_leaf && !node->envelope && self->grant[i] != CV_GRANT_SHARE)
            return false;
    }
    /* a marking of a field the report lacks stays behind: the view is
     * then not the report */
    settle_given(self);
    for (size_t m = 0; m < self->report->n_field_markings; m++)
        if (marking_hidden(self, self->markings_node, m))
            return false;
    return true;
}
