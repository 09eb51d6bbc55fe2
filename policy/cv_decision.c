/*  cv_decision.c: decide whether a report goes to a recipient, and build
 *  the recipient's view of it.
 *
 *  Deciding is the hot path (the broker decides every report for every
 *  agency), so it allocates nothing once the decision's arrays have grown,
 *  and records why in small codes; the text of reasons and field
 *  explanations is formatted only when someone asks for it.
 *
 *  The semantics are those of docs/policy.md, numbered there:
 *  default deny (1), rule matching (2), field levels (4), the union of
 *  grants with the most protective outcome per field (5), masks (6),
 *  handling codes 4 and 5 (7), no echo to the originator (8).
 */
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
} why_t;

typedef struct {
    uint8_t grant; /* cv_grant_t */
    uint8_t why;   /* why_t */
    int entry;     /* the entry behind it, or -1 */
} outcome_t;

struct cv_decision_t {
    const cv_policy_t *policy;
    const Caveat__Report *report;
    int recipient, originator, level;
    bool delivered;
    const char *feed;

    int *matched; /* entry indexes */
    int n_matched, cap_matched;
    reason_t *reasons;
    int n_reasons, cap_reasons;

    size_t size; /* schema nodes */
    uint8_t *field_level;
    outcome_t *outcome;
    uint8_t *granted; /* something under this node goes */
    uint8_t *present; /* the report has a value here */
    bool viewed;

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

cv_decision_t *cv_decision_new(void)
{
    cv_decision_t *self = calloc(1, sizeof *self);
    if (!self)
        abort();
    const cv_schema_t *schema = cv_schema_report();
    self->size = (size_t)cv_schema_size(schema);
    self->field_level = calloc(self->size, 1);
    self->outcome = calloc(self->size, sizeof *self->outcome);
    self->granted = calloc(self->size, 1);
    self->present = calloc(self->size, 1);
    if (!self->field_level || !self->outcome || !self->granted || !self->present)
        abort();
    return self;
}

static void free_text(cv_decision_t *self)
{
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
    free(self->reasons);
    free(self->field_level);
    free(self->outcome);
    free(self->granted);
    free(self->present);
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
    if (!self->feed && self->policy->entries[entry].screening)
        self->feed = self->policy->entries[entry].feed;
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
    const cv_agency_internal_t *to = &p->agencies[self->recipient];
    const cv_agency_internal_t *from = &p->agencies[self->originator];
    if (!code)
        return refuse(self, R_UNKNOWN_CODE, -1);
    if (code->has_to && !cv_agency_set_has(&code->to, to, self->recipient))
        return refuse(self, R_CODE_RECIPIENT, -1);
    if (code->same_organisation && to->org_id != from->org_id)
        return refuse(self, R_CODE_ORGANISATION, -1);
    if (code->originator_approval && !approved(approvals, &to->pub))
        return refuse(self, R_CODE_APPROVAL, -1);
    return true;
}

/*  Semantics 2, for the parts not settled by the index (category and
 *  recipient) or by code_allows. */
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

/*  A screening entry's match: any of its categories, indicators or
 *  keywords (in summary or narrative). */
static bool screen_matches(const cv_entry_t *entry, const Caveat__Report *report, int category)
{
    if (entry->match_categories >> category & 1)
        return true;
    for (size_t i = 0; i < report->n_indicators; i++)
        if (in_list(entry->match_indicators, entry->n_match_indicators, report->indicators[i]))
            return true;
    for (int i = 0; i < entry->n_match_keywords; i++)
        if (contains_folded(report->summary, entry->match_keywords[i]) ||
            contains_folded(report->narrative, entry->match_keywords[i]))
            return true;
    return false;
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
    self->feed = NULL;
    self->n_matched = 0;
    self->n_reasons = 0;
    self->viewed = false;
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
    int category = cv_policy_category_find(self, report->category);
    if (category < 0)
        return refuse(d, R_UNKNOWN_CATEGORY, -1);
    d->level = cv_policy_level_find(self, report->handling_level);
    if (d->level < 0)
        return refuse(d, R_UNKNOWN_LEVEL, -1);
    const cv_agency_internal_t *to = &self->agencies[recipient];
    if (d->level > to->pub.clearance)
        return refuse(d, R_ABOVE_CLEARANCE, -1);
    if (!code_allows(d, approvals))
        return false;

    for (int i = to->rule_offsets[category]; i < to->rule_offsets[category + 1]; i++)
        if (entry_applies(d, to->rules[i]))
            match(d, to->rules[i]);
    for (int i = 0; i < to->n_screens; i++) {
        int e = to->screens[i];
        if (!screen_matches(&self->entries[e], report, category))
            refuse(d, R_SCREEN_NO_MATCH, e);
        else if (entry_applies(d, e))
            match(d, e);
    }
    d->delivered = d->n_matched > 0;
    if (!d->delivered && d->n_reasons == 0)
        refuse(d, R_NO_ENTRY, -1);
    return d->delivered;
}

bool cv_decision_delivered(const cv_decision_t *self)
{
    return self->delivered;
}

int cv_decision_entry_count(const cv_decision_t *self)
{
    return self->n_matched;
}

const char *cv_decision_entry_name(const cv_decision_t *self, int index)
{
    return index >= 0 && index < self->n_matched ? self->policy->entries[self->matched[index]].name
                                                 : NULL;
}

const char *cv_decision_feed(const cv_decision_t *self)
{
    return self->feed;
}

/* ------------------------------------------------------------------------ */
/*  Field outcomes: semantics 4 and 5.                                      */

static const cv_schema_node_t *node_at(int index)
{
    return cv_schema_node(cv_schema_report(), index);
}

/*  A field's level: the report's, raised by any marking on it or a parent.
 *  A marking with an unknown level counts as the highest: fail closed. */
static void compute_field_levels(cv_decision_t *self)
{
    const cv_policy_t *p = self->policy;
    const Caveat__Report *report = self->report;
    memset(self->field_level, self->level, self->size);
    for (size_t m = 0; m < report->n_field_markings; m++) {
        const Caveat__FieldMarking *marking = report->field_markings[m];
        int node = marking->path ? cv_schema_find(p->schema, marking->path) : -1;
        if (node < 0)
            continue;
        int level = cv_policy_level_find(p, marking->level);
        if (level < 0)
            level = p->n_levels - 1;
        for (int i = node; i < node_at(node)->end; i++)
            if (self->field_level[i] < level)
                self->field_level[i] = (uint8_t)level;
    }
}

static outcome_t leaf_outcome(const cv_decision_t *self, int leaf)
{
    const cv_policy_t *p = self->policy;
    int clearance = p->agencies[self->recipient].pub.clearance;
    outcome_t out = {CV_GRANT_NONE, W_NOT_GRANTED, -1};
    if (node_at(leaf)->envelope)
        return (outcome_t){CV_GRANT_SHARE, W_ENVELOPE, -1};
    for (int m = 0; m < self->n_matched; m++) {
        const cv_entry_t *entry = &p->entries[self->matched[m]];
        cv_grant_t grant = entry->grants[leaf];
        if (grant == CV_GRANT_NONE)
            continue;
        int cap = entry->max_level < clearance ? entry->max_level : clearance;
        if (grant != CV_GRANT_DENY && self->field_level[leaf] > cap) {
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
    return out;
}

static bool goes(cv_grant_t grant)
{
    return grant != CV_GRANT_NONE && grant != CV_GRANT_DENY;
}

static void compute_outcomes(cv_decision_t *self)
{
    compute_field_levels(self);
    memset(self->granted, 0, self->size);
    for (int i = 0; i < (int)self->size; i++) {
        if (!node_at(i)->is_leaf) {
            self->outcome[i] = (outcome_t){CV_GRANT_NONE, W_NOT_GRANTED, -1};
            continue;
        }
        self->outcome[i] = leaf_outcome(self, i);
        if (goes(self->outcome[i].grant))
            for (int n = i; n >= 0; n = node_at(n)->parent)
                self->granted[n] = 1;
    }
}

/* ------------------------------------------------------------------------ */
/*  Building the view: a generic copy over the descriptor that copies only
 *  what is granted, masking on the way. Nothing withheld is ever copied, so
 *  no withheld byte can reach the packed view.                             */

static size_t scalar_size(ProtobufCType type)
{
    switch (type) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    default:
        return 4;
    }
}

static ProtobufCMessage *copy_message(cv_decision_t *self, const ProtobufCMessage *src, int parent);

static char *mask_string(cv_decision_t *self, cv_grant_t grant, const char *value)
{
    switch (grant) {
    case CV_GRANT_SHARE:
        return strdup(value);
    case CV_GRANT_YEAR:
        return cv_mask_year(value);
    case CV_GRANT_POSTCODE_DISTRICT:
        return cv_mask_postcode_district(value);
    case CV_GRANT_INITIALS:
        return cv_mask_initials(value);
    case CV_GRANT_PSEUDONYMISE:
        return cv_mask_pseudonymise(self->policy->pseudonym_key,
                                    self->policy->agencies[self->recipient].pub.organisation,
                                    value);
    default:
        return NULL;
    }
}

/*  A map entry: the key as is, the value as granted. */
static ProtobufCMessage *copy_map_entry(cv_decision_t *self, const ProtobufCMessage *src,
                                        cv_grant_t grant)
{
    const ProtobufCMessageDescriptor *d = src->descriptor;
    const char *key = *(char *const *)((const char *)src + d->fields[0].offset);
    const char *value = *(char *const *)((const char *)src + d->fields[1].offset);
    char *masked = value ? mask_string(self, grant, value) : NULL;
    if (!key || !masked) {
        free(masked);
        return NULL;
    }
    ProtobufCMessage *dst = calloc(1, d->sizeof_message);
    if (!dst)
        abort();
    protobuf_c_message_init(d, dst);
    *(char **)((char *)dst + d->fields[0].offset) = strdup(key);
    *(char **)((char *)dst + d->fields[1].offset) = masked;
    return dst;
}

/*  Copies one value of field (at src_value) to dst_value. Returns false
 *  when the value cannot be masked as granted, so it is withheld. */
static bool copy_value(cv_decision_t *self, int node, const void *src_value, void *dst_value)
{
    const cv_schema_node_t *n = node_at(node);
    cv_grant_t grant = self->outcome[node].grant;
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
        memcpy(dst_value, src_value, scalar_size(n->field->type));
        return true;
    }
}

static void copy_repeated(cv_decision_t *self, int node, const ProtobufCMessage *src,
                          ProtobufCMessage *dst)
{
    const ProtobufCFieldDescriptor *f = node_at(node)->field;
    size_t n = *(const size_t *)((const char *)src + f->quantifier_offset);
    const char *from = *(char *const *)((const char *)src + f->offset);
    size_t size = scalar_size(f->type);
    if (n == 0)
        return;
    char *to = calloc(n, size);
    if (!to)
        abort();
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        if (copy_value(self, node, from + i * size, to + kept * size))
            kept++;
    if (kept == 0) {
        /* every value failed its mask (a message always copies) */
        self->outcome[node].why = W_MASK_FAILED;
        free(to);
        return;
    }
    *(size_t *)((char *)dst + f->quantifier_offset) = kept;
    *(char **)((char *)dst + f->offset) = to;
}

static void copy_field(cv_decision_t *self, int node, const ProtobufCMessage *src,
                       ProtobufCMessage *dst)
{
    const ProtobufCFieldDescriptor *f = node_at(node)->field;
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
        self->outcome[node].why = W_MASK_FAILED;
        return;
    }
    if (!pointer)
        *(protobuf_c_boolean *)((char *)dst + f->quantifier_offset) = 1;
}

static ProtobufCMessage *copy_message(cv_decision_t *self, const ProtobufCMessage *src, int parent)
{
    const ProtobufCMessageDescriptor *d = src->descriptor;
    ProtobufCMessage *dst = calloc(1, d->sizeof_message);
    if (!dst)
        abort();
    protobuf_c_message_init(d, dst);
    /* pre-order: a message's first field is the next node, and each
     * field's next sibling is where its subtree ends */
    int node = parent + 1;
    for (unsigned i = 0; i < d->n_fields; i++, node = node_at(node)->end)
        if (self->granted[node])
            copy_field(self, node, src, dst);
    return dst;
}

Caveat__Report *cv_decision_view(cv_decision_t *self, const Caveat__Report *report)
{
    if (!self->delivered)
        return NULL;
    self->report = report;
    compute_outcomes(self);
    self->viewed = true;
    return (Caveat__Report *)copy_message(self, &report->base, -1);
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

static void format_reasons(cv_decision_t *self)
{
    if (self->reasons_done)
        return;
    self->reasons_done = true;
    /* near misses (entries that did not apply) matter only when nothing
     * released the report */
    for (int i = 0; !self->delivered && i < self->n_reasons; i++)
        add_reason_text(self, reason_text(self, &self->reasons[i]));
    if (!self->viewed)
        return;
    /* what capped the view: present fields withheld for their level */
    memset(self->present, 0, self->size);
    mark_present(self, &self->report->base, -1);
    const cv_policy_t *p = self->policy;
    for (int i = 0; i < (int)self->size; i++) {
        why_t why = self->outcome[i].why;
        if (!self->present[i] || (why != W_ABOVE_CLEARANCE && why != W_ABOVE_MAX_LEVEL))
            continue;
        add_reason_text(self, format("%s: marked %s, above %s", node_at(i)->path,
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
    for (unsigned i = 0; i < d->n_fields; i++, node = node_at(node)->end) {
        const cv_schema_node_t *n = node_at(node);
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
    if (!self->viewed)
        for (int i = 0; i < (int)self->size; i++)
            self->outcome[i] = (outcome_t){CV_GRANT_NONE, W_NOT_DELIVERED, -1};
    self->fields = calloc(self->size, sizeof *self->fields);
    self->field_why = calloc(self->size, sizeof *self->field_why);
    if (!self->fields || !self->field_why)
        abort();
    for (int i = 0; i < (int)self->size; i++) {
        if (!self->present[i] || !node_at(i)->is_leaf)
            continue;
        outcome_t o = self->outcome[i];
        bool withheld = !goes(o.grant) || o.why == W_MASK_FAILED;
        self->field_why[self->n_fields] = field_why(self, i);
        self->fields[self->n_fields] = (cv_field_decision_t){
            .path = node_at(i)->path,
            .decision = withheld ? "withheld" : cv_grant_name(o.grant),
            .why = self->field_why[self->n_fields],
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
