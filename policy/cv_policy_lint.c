/*  cv_policy_lint.c: warnings about a policy that loads but probably does
 *  not say what its author meant (`caveat policy check`).
 *
 *  Each check reads the compiled policy; the policy's text is parsed again
 *  only to point at the place, so a warning reads
 *  FILE:LINE:COL: warning: what, like an error. The checks:
 *
 *    an entry whose fields are all deny: it can never deliver (it may
 *      be meant to withhold what other entries grant; the warning says so);
 *    an entry shadowed by another of its kind that matches every delivery
 *      it matches and, field by field, already gives what it gives (with
 *      several entries the most protective grant wins, so the shadowed
 *      entry changes no decision);
 *    a restriction that can never apply: its to_* and except_to_* leave no
 *      recipient, or its from_* no originator other than the recipients;
 *    levels that look reversed: a level whose name holds a well-known
 *      higher marking listed before one holding a lower, though the list is
 *      lowest first.
 */
#include <ctype.h>
#include <libfyaml.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "policy_internal.h"

typedef struct {
    const cv_policy_t *policy;
    struct fy_node *root; /* the policy's text, for positions; NULL if unparsable */
    cv_policy_warning_fn *each;
    void *arg;
    int count;
} lint_t;

static void warn(lint_t *l, struct fy_node *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void warn(lint_t *l, struct fy_node *at, const char *fmt, ...)
{
    int line = 0, col = 0;
    if (at)
        cv_node_position(at, &line, &col);
    char what[400], text[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (line > 0)
        snprintf(text, sizeof text, "%s:%d:%d: warning: %s", l->policy->name, line, col, what);
    else
        snprintf(text, sizeof text, "%s: warning: %s", l->policy->name, what);
    l->count++;
    if (l->each)
        l->each(text, l->arg);
}

static const char *kind(const cv_entry_t *e)
{
    return e->screening ? "screening" : "rule";
}

/*  The YAML node of entry e: the policy loaded, so rules[i] is entry i and
 *  screening[j] entry n_rules + j. */
static struct fy_node *entry_node(const lint_t *l, int e)
{
    const cv_policy_t *p = l->policy;
    bool screening = p->entries[e].screening;
    struct fy_node *list =
        l->root
            ? fy_node_mapping_lookup_by_string(l->root, screening ? "screening" : "rules", FY_NT)
            : NULL;
    return list ? fy_node_sequence_get_by_index(list, screening ? e - p->n_rules : e) : NULL;
}

/* ------------------------------------------------------------------------ */
/*  Entries that deny every field.                                          */

static void lint_all_deny(lint_t *l)
{
    for (int e = 0; e < l->policy->n_entries; e++) {
        const cv_entry_t *entry = &l->policy->entries[e];
        if (!entry->grants_any && !entry->notice)
            warn(l, entry_node(l, e),
                 "%s '%s': every field is deny: it can never deliver a report, only "
                 "withhold fields that other entries grant",
                 kind(entry), entry->name);
    }
}

/* ------------------------------------------------------------------------ */
/*  Shadowed entries.                                                       */

static bool is_subset(uint64_t inner, uint64_t outer)
{
    return (inner & ~outer) == 0;
}

/*  Every agency in inner is in outer. */
static bool set_within(const cv_policy_t *p, const cv_agency_set_t *inner,
                       const cv_agency_set_t *outer)
{
    if (outer->any)
        return true;
    if (inner->any || !is_subset(inner->types, outer->types))
        return false;
    for (int a = 0; inner->agencies && a < p->n_agencies; a++)
        if (inner->agencies[a] && !cv_agency_set_has(outer, &p->agencies[a], a))
            return false;
    return true;
}

static bool strings_within(char *const *inner, int n_inner, char *const *outer, int n_outer)
{
    for (int i = 0; i < n_inner; i++) {
        int j = 0;
        while (j < n_outer && strcmp(inner[i], outer[j]) != 0)
            j++;
        if (j == n_outer)
            return false;
    }
    return true;
}

/*  Every report b matches, a matches too: for a rule its categories, for
 *  a screening entry its feed and match (any one of its criteria). */
static bool matches_within(const cv_entry_t *b, const cv_entry_t *a)
{
    if (a->screening != b->screening)
        return false;
    if (!a->screening)
        return is_subset(b->categories, a->categories);
    return strcmp(a->feed, b->feed) == 0 && is_subset(b->match_categories, a->match_categories) &&
           strings_within(b->match_indicators, b->n_match_indicators, a->match_indicators,
                          a->n_match_indicators) &&
           strings_within(b->match_keywords, b->n_match_keywords, a->match_keywords,
                          a->n_match_keywords);
}

/*  a matches every delivery b matches, and b changes no field: the most
 *  protective grant wins, so b[f] <= a[f] leaves a's grant in force. A
 *  notice (b delivers the envelope alone) is covered by an a that
 *  delivers. */
static bool shadows(const cv_policy_t *p, const cv_entry_t *a, const cv_entry_t *b)
{
    if (!matches_within(b, a) || !set_within(p, &b->from, &a->from) ||
        !set_within(p, &b->to, &a->to) || (a->same_area && !b->same_area) ||
        b->max_level > a->max_level)
        return false;
    if (b->notice && !a->notice && !a->grants_any)
        return false;
    int size = cv_schema_size(p->schema);
    for (int f = 0; f < size; f++)
        if (b->grants[f] > a->grants[f])
            return false;
    return true;
}

static void lint_shadowed(lint_t *l)
{
    const cv_policy_t *p = l->policy;
    for (int b = 0; b < p->n_entries; b++)
        for (int a = 0; a < p->n_entries; a++) {
            const cv_entry_t *shadowing = &p->entries[a], *shadowed = &p->entries[b];
            /* of two that shadow each other, the later one is the spare */
            if (a == b || !shadows(p, shadowing, shadowed) ||
                (a > b && shadows(p, shadowed, shadowing)))
                continue;
            warn(l, entry_node(l, b),
                 "%s '%s' is shadowed by %s '%s': that one matches every delivery this "
                 "one matches and already gives each field as much protection",
                 kind(shadowed), shadowed->name, kind(shadowing), shadowing->name);
            break;
        }
}

/* ------------------------------------------------------------------------ */
/*  Restrictions that can never apply.                                      */

/*  Some agency other than recipient to is among restriction r's
 *  originators. */
static bool has_originator(const cv_policy_t *p, int r, int to)
{
    for (int a = 0; a < p->n_agencies; a++)
        if (a != to && cv_agency_set_has(&p->restrictions[r].from, &p->agencies[a], a))
            return true;
    return false;
}

static void lint_restrictions(lint_t *l)
{
    const cv_policy_t *p = l->policy;
    struct fy_node *list =
        l->root ? fy_node_mapping_lookup_by_string(l->root, "restrictions", FY_NT) : NULL;
    for (int r = 0; r < p->n_restrictions; r++) {
        bool recipient = false, delivery = false;
        for (int to = 0; to < p->n_agencies && !delivery; to++)
            if (cv_restriction_to(p, r, to)) {
                recipient = true;
                delivery = has_originator(p, r, to);
            }
        if (delivery)
            continue;
        warn(l, list ? fy_node_sequence_get_by_index(list, r) : NULL,
             "restriction '%s' can never apply: %s", p->restrictions[r].name,
             recipient ? "its from_* name no agency that could send to a recipient it names"
                       : "its to_* and except_to_* leave no recipient");
    }
}

/* ------------------------------------------------------------------------ */
/*  Levels that look reversed.                                              */

/*  True when word is in name between '-'s or the ends. */
static bool has_word(const char *name, const char *word)
{
    size_t len = strlen(word);
    for (const char *at = strstr(name, word); at; at = strstr(at + 1, word))
        if ((at == name || at[-1] == '-') && (at[len] == '\0' || at[len] == '-'))
            return true;
    return false;
}

/*  The rank of the well-known marking a level's name holds, lowest first:
 *  current UK government classifications and the older scheme's names,
 *  with or without a prefix or suffix ("UK SECRET", "TOP SECRET STRAP1");
 *  the longest that fits wins ("OFFICIAL-SENSITIVE", not "OFFICIAL"). -1
 *  for a name that holds none. Case, spaces and '_' do not matter. */
static int known_rank(const char *level)
{
    static const struct {
        const char *name;
        int rank;
    } ranks[] = {
        {"UNCLASSIFIED", 0}, {"PUBLIC", 0},     {"OFFICIAL", 1},
        {"PROTECT", 1},      {"RESTRICTED", 2}, {"OFFICIAL-SENSITIVE", 2},
        {"CONFIDENTIAL", 3}, {"SECRET", 4},     {"TOP-SECRET", 5},
        {"LOW", 0},          {"MEDIUM", 1},     {"HIGH", 2},
    };
    char name[64];
    size_t n = 0;
    for (; level[n] && n < sizeof name - 1; n++)
        name[n] = level[n] == ' ' || level[n] == '_' ? '-' : (char)toupper((unsigned char)level[n]);
    name[n] = '\0';
    int rank = -1;
    size_t longest = 0;
    for (size_t i = 0; i < sizeof ranks / sizeof *ranks; i++)
        if (strlen(ranks[i].name) > longest && has_word(name, ranks[i].name)) {
            rank = ranks[i].rank;
            longest = strlen(ranks[i].name);
        }
    return rank;
}

static void lint_levels(lint_t *l)
{
    const cv_policy_t *p = l->policy;
    struct fy_node *levels =
        l->root ? fy_node_mapping_lookup_by_string(l->root, "levels", FY_NT) : NULL;
    for (int lower = 0; lower < p->n_levels; lower++)
        for (int higher = lower + 1; higher < p->n_levels; higher++) {
            int was = known_rank(p->levels[lower]), now = known_rank(p->levels[higher]);
            if (was < 0 || now < 0 || was <= now)
                continue;
            warn(l, levels ? fy_node_sequence_get_by_index(levels, lower) : NULL,
                 "levels: '%s' is listed before '%s', but levels are listed lowest first",
                 p->levels[lower], p->levels[higher]);
            return; /* one is enough: the whole list is likely reversed */
        }
}

/* ------------------------------------------------------------------------ */

/* ------------------------------------------------------------------------ */
/*  Names an approval cannot tell apart.                                    */

static bool any_approval_code(const cv_policy_t *p)
{
    for (int c = 0; c < p->n_codes; c++)
        if (p->codes[c].originator_approval)
            return true;
    return false;
}

/*  An approval names an agency or an agency type: an agency that has a
 *  type's name would be approved with every agency of that type. */
static void lint_approval_names(lint_t *l)
{
    const cv_policy_t *p = l->policy;
    if (!any_approval_code(p))
        return;
    struct fy_node *agencies =
        l->root ? fy_node_mapping_lookup_by_string(l->root, "agencies", FY_NT) : NULL;
    for (int a = 0; a < p->n_agencies; a++) {
        const char *id = p->agencies[a].pub.id;
        if (cv_policy_type_find(p, id) < 0)
            continue;
        struct fy_node *at =
            agencies ? fy_node_mapping_lookup_key_by_string(agencies, id, FY_NT) : NULL;
        warn(l, at,
             "agency '%s' has the name of an agency type: an approval of a held report to "
             "'%s' releases it to every agency of that type too",
             id, id);
    }
}

int cv_policy_lint(const cv_policy_t *policy, const char *text, size_t len,
                   cv_policy_warning_fn *each, void *arg)
{
    struct fy_parse_cfg cfg = {.flags = FYPCF_QUIET};
    struct fy_document *doc = text ? fy_document_build_from_string(&cfg, text, len) : NULL;
    lint_t l = {
        .policy = policy, .root = doc ? fy_document_root(doc) : NULL, .each = each, .arg = arg};
    if (l.root && !fy_node_is_mapping(l.root))
        l.root = NULL;
    lint_levels(&l);
    lint_all_deny(&l);
    lint_shadowed(&l);
    lint_restrictions(&l);
    lint_approval_names(&l);
    fy_document_destroy(doc);
    return l.count;
}
