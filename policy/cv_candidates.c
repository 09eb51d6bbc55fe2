/*  cv_candidates.c: the agencies a report may go to, found without deciding
 *  for every agency of the policy, so that routing a report costs what its
 *  recipients cost and not what the partnership's size costs.
 *
 *  A report can go only where a rule or screening entry that delivers
 *  (shares, masks or sends a notice) sends it: one that covers its category
 *  (a screening entry that matches on indicators or keywords covers every
 *  category), its originator, and its level (max_level), to a recipient in
 *  the entry's to set, serving the report's area when the entry says
 *  same_area, cleared for the level, allowed by the handling code, and not
 *  the originator. Restrictions only take fields away, so they never add a
 *  recipient, and are not read here.
 *
 *  At load, for the entries that name their originators by type (or not at
 *  all), the agency types they reach are ORed per (originator type,
 *  category, level) into cv_reach_t, split into those reached anywhere and
 *  those reached only in the report's area. The entries that list agencies
 *  (from_agencies or to_agencies) are kept per category and checked for
 *  each report, a few nanoseconds each. Per report, the types are turned into
 *  agencies through lists by type and by area, marked in a bitmap (each
 *  agency once, in order), and the marked ones that the level and the
 *  handling code allow are the candidates.
 *
 *  What is left out is only what deciding refuses anyway; what is kept in
 *  beyond that (approvals for handling code 5, a screening entry whose
 *  keywords the report lacks, field markings or restrictions that leave
 *  nothing to send) is decided and refused. The memory is 16 bytes per (originator type,
 *  category, level) and a few ints per agency and per listed agency: it
 *  grows with the policy's vocabulary and size, never with agencies times
 *  agencies (about 50 KB for 2,000 agencies and 10 categories).
 */
#include <stdlib.h>
#include <string.h>

#include "cv_alloc.h"
#include "policy_internal.h"

struct cv_candidates_t {
    uint64_t *marked; /* a bit per agency, all clear between calls */
    int *list;
    int cap; /* agencies that marked and list have room for */
};

/* ------------------------------------------------------------------------ */
/*  The index, built once at load.                                          */

static uint64_t all_of(int count)
{
    return count >= 64 ? UINT64_MAX : (UINT64_C(1) << count) - 1;
}

/*  An entry that only denies never delivers (nor tells that a report
 *  exists): it sends nobody anything. */
static bool delivers(const cv_entry_t *e)
{
    return e->notice || e->grants_any;
}

/*  The categories an entry may release: a screening entry that matches on
 *  the report's indicators or words may release any. */
static uint64_t entry_categories(const cv_policy_t *p, const cv_entry_t *e)
{
    if (!e->screening)
        return e->categories;
    if (e->n_match_indicators || e->n_match_keywords)
        return all_of(p->n_categories);
    return e->match_categories;
}

static uint64_t entry_to_types(const cv_policy_t *p, const cv_entry_t *e)
{
    return e->to.any ? all_of(p->n_types) : e->to.types;
}

static cv_reach_t *reach_at(const cv_policy_t *p, int type, int category, int level)
{
    return &p->route.reach[((size_t)type * (size_t)p->n_categories + (size_t)category) *
                               (size_t)p->n_levels +
                           (size_t)level];
}

static void reach_add(cv_reach_t *reach, bool same_area, uint64_t types)
{
    if (same_area)
        reach->in_area |= types;
    else
        reach->anywhere |= types;
}

/*  What the entries that cover an originator type send, per (category,
 *  level): entry e adds its to_types at every level up to its max_level. */
static void index_reach(cv_policy_t *p)
{
    size_t cells = (size_t)p->n_types * (size_t)p->n_categories * (size_t)p->n_levels;
    p->route.reach = cv_xcalloc(cells, sizeof *p->route.reach);
    for (int e = 0; e < p->n_entries; e++) {
        const cv_entry_t *entry = &p->entries[e];
        uint64_t types = entry_to_types(p, entry);
        uint64_t from = p->hot[e].from_types & all_of(p->n_types);
        if (!delivers(entry) || !types)
            continue;
        for (; from; from &= from - 1)
            for (uint64_t c = entry_categories(p, entry); c; c &= c - 1)
                for (int level = 0; level <= entry->max_level; level++)
                    reach_add(reach_at(p, __builtin_ctzll(from), __builtin_ctzll(c), level),
                              entry->same_area, types);
    }
}

/*  An entry whose originators or recipients are listed by agency: what
 *  it sends depends on who the originator is, or goes beyond types. */
static bool named(const cv_entry_t *e)
{
    return delivers(e) && (e->from.agencies || e->to.agencies);
}

/*  Per category, the named entries that cover it: counted, then placed. */
static void index_named(cv_policy_t *p)
{
    cv_route_index_t *r = &p->route;
    r->named_first = cv_xcalloc((size_t)p->n_categories + 1, sizeof *r->named_first);
    for (int e = 0; e < p->n_entries; e++)
        for (uint64_t c = named(&p->entries[e]) ? entry_categories(p, &p->entries[e]) : 0; c;
             c &= c - 1)
            r->named_first[__builtin_ctzll(c) + 1]++;
    for (int c = 0; c < p->n_categories; c++)
        r->named_first[c + 1] += r->named_first[c];
    r->named = cv_xcalloc((size_t)r->named_first[p->n_categories], sizeof *r->named);
    int *next = cv_xcalloc((size_t)p->n_categories, sizeof *next);
    memcpy(next, r->named_first, (size_t)p->n_categories * sizeof *next);
    for (int e = 0; e < p->n_entries; e++)
        for (uint64_t c = named(&p->entries[e]) ? entry_categories(p, &p->entries[e]) : 0; c;
             c &= c - 1)
            r->named[next[__builtin_ctzll(c)]++] = e;
    free(next);
}

/*  Each entry's to_agencies as agency indexes, ascending: counted, then
 *  placed. */
static void index_to_agencies(cv_policy_t *p)
{
    cv_route_index_t *r = &p->route;
    r->to_first = cv_xcalloc((size_t)p->n_entries + 1, sizeof *r->to_first);
    for (int e = 0; e < p->n_entries; e++) {
        const uint8_t *listed = p->entries[e].to.agencies;
        r->to_first[e + 1] = r->to_first[e];
        for (int a = 0; listed && a < p->n_agencies; a++)
            r->to_first[e + 1] += listed[a];
    }
    r->to_pool = cv_xcalloc((size_t)r->to_first[p->n_entries], sizeof *r->to_pool);
    for (int e = 0; e < p->n_entries; e++) {
        const uint8_t *listed = p->entries[e].to.agencies;
        for (int a = 0, k = r->to_first[e]; listed && a < p->n_agencies; a++)
            if (listed[a])
                r->to_pool[k++] = a;
    }
}

/*  Fills *first (count + 1 offsets) and *pool with, per group, the
 *  agencies that `member` puts in it, ascending: counted, then placed.
 *  member writes an agency's groups into groups and returns how many. */
typedef int (*member_fn)(const cv_policy_t *p, int agency, int *groups);

static void index_members(const cv_policy_t *p, int count, member_fn member, int **first_p,
                          int **pool_p)
{
    int *first = cv_xcalloc((size_t)count + 1, sizeof *first);
    int *groups = cv_xcalloc((size_t)p->n_area_names + 1, sizeof *groups); /* an agency's areas */
    for (int a = 0; a < p->n_agencies; a++)
        for (int i = 0, n = member(p, a, groups); i < n; i++)
            first[groups[i] + 1]++;
    for (int g = 0; g < count; g++)
        first[g + 1] += first[g];
    int *pool = cv_xcalloc((size_t)first[count], sizeof *pool);
    int *next = cv_xcalloc((size_t)count + 1, sizeof *next);
    memcpy(next, first, (size_t)count * sizeof *next);
    for (int a = 0; a < p->n_agencies; a++)
        for (int i = 0, n = member(p, a, groups); i < n; i++)
            pool[next[groups[i]]++] = a;
    free(next);
    free(groups);
    *first_p = first;
    *pool_p = pool;
}

static int type_member(const cv_policy_t *p, int a, int *groups)
{
    groups[0] = p->agency_hot[a].type_id;
    return 1;
}

/*  The areas agency a serves (the loader refuses one listed twice), unless
 *  it serves all: "*" covers every area, and such agencies are listed
 *  apart. */
static int area_member(const cv_policy_t *p, int a, int *groups)
{
    const cv_agency_hot_t *agency = &p->agency_hot[a];
    if (agency->all_areas)
        return 0;
    memcpy(groups, p->area_pool + agency->area_first, (size_t)agency->n_areas * sizeof *groups);
    return agency->n_areas;
}

static void index_everywhere(cv_policy_t *p)
{
    cv_route_index_t *r = &p->route;
    r->everywhere = cv_xcalloc((size_t)p->n_agencies, sizeof *r->everywhere);
    for (int a = 0; a < p->n_agencies; a++)
        if (p->agency_hot[a].all_areas)
            r->everywhere[r->n_everywhere++] = a;
}

void cv_route_index(cv_policy_t *p)
{
    cv_route_index_t *r = &p->route;
    index_reach(p);
    index_named(p);
    index_to_agencies(p);
    index_members(p, p->n_types, type_member, &r->type_first, &r->type_pool);
    index_members(p, p->n_area_names, area_member, &r->area_first, &r->area_members);
    index_everywhere(p);
}

void cv_route_index_free(cv_policy_t *p)
{
    cv_route_index_t *r = &p->route;
    free(r->reach);
    free(r->named_first);
    free(r->named);
    free(r->to_first);
    free(r->to_pool);
    free(r->type_first);
    free(r->type_pool);
    free(r->area_first);
    free(r->area_members);
    free(r->everywhere);
    memset(r, 0, sizeof *r);
}

size_t cv_route_index_bytes(const cv_policy_t *p)
{
    const cv_route_index_t *r = &p->route;
    if (!r->reach)
        return 0;
    size_t cells = (size_t)p->n_types * (size_t)p->n_categories * (size_t)p->n_levels;
    size_t ints = (size_t)p->n_categories + 1 + (size_t)r->named_first[p->n_categories] +
                  (size_t)p->n_entries + 1 + (size_t)r->to_first[p->n_entries] +
                  (size_t)p->n_types + 1 + (size_t)r->type_first[p->n_types] +
                  (size_t)p->n_area_names + 1 + (size_t)r->area_first[p->n_area_names] +
                  (size_t)p->n_agencies;
    return sizeof *r + cells * sizeof *r->reach + ints * sizeof(int);
}

/* ------------------------------------------------------------------------ */
/*  Per report.                                                             */

cv_candidates_t *cv_candidates_new(void)
{
    return cv_xcalloc(1, sizeof(cv_candidates_t));
}

void cv_candidates_destroy(cv_candidates_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->marked);
    free((*self_p)->list);
    free(*self_p);
    *self_p = NULL;
}

/*  What deciding checks of a report whatever the recipient. */
typedef struct {
    int originator, type_id, org_id, category, level, area;
    const cv_handling_code_t *code; /* NULL when the policy has none */
} route_t;

/*  False when deciding refuses the report for every recipient. */
static bool route_of(const cv_policy_t *p, const Caveat__Report *report, route_t *r)
{
    r->originator = cv_policy_agency_find(p, report->originator);
    r->category = cv_policy_category_find(p, report->category);
    r->level = cv_policy_level_find(p, report->handling_level);
    if (r->originator < 0 || r->category < 0 || r->level < 0)
        return false;
    r->type_id = p->agency_hot[r->originator].type_id;
    r->org_id = p->agency_hot[r->originator].org_id;
    r->area = cv_policy_area_find(p, report->area);
    r->code = NULL;
    if (p->n_codes == 0)
        return true;
    r->code = cv_policy_code_find(p, report->grading ? report->grading->handling_code : NULL);
    return r->code != NULL;
}

static void mark(cv_candidates_t *self, int agency)
{
    self->marked[agency >> 6] |= UINT64_C(1) << (agency & 63);
}

/*  The named entries of the category that cover the originator and the
 *  level: their to_types join reach, their to_agencies are marked. */
static void add_named(const cv_policy_t *p, const route_t *r, cv_reach_t *reach,
                      cv_candidates_t *self)
{
    const cv_route_index_t *index = &p->route;
    for (int i = index->named_first[r->category]; i < index->named_first[r->category + 1]; i++) {
        int e = index->named[i];
        const cv_entry_t *entry = &p->entries[e];
        if (r->level > entry->max_level || !cv_hot_from(p, &p->hot[e], r->type_id, r->originator))
            continue;
        reach_add(reach, entry->same_area, entry_to_types(p, entry));
        for (int k = index->to_first[e]; k < index->to_first[e + 1]; k++)
            if (!entry->same_area ||
                cv_agency_serves(p, &p->agency_hot[index->to_pool[k]], r->area))
                mark(self, index->to_pool[k]);
    }
}

/*  The agencies of the types reached: anywhere, by type; in the area, by
 *  the area's agencies and those that serve every area. */
static void mark_types(const cv_policy_t *p, const route_t *r, cv_reach_t reach,
                       cv_candidates_t *self)
{
    const cv_route_index_t *index = &p->route;
    reach.in_area &= ~reach.anywhere;
    for (uint64_t t = reach.anywhere; t; t &= t - 1) {
        int type = __builtin_ctzll(t);
        for (int i = index->type_first[type]; i < index->type_first[type + 1]; i++)
            mark(self, index->type_pool[i]);
    }
    if (!reach.in_area)
        return;
    int first = r->area < 0 ? 0 : index->area_first[r->area];
    int end = r->area < 0 ? 0 : index->area_first[r->area + 1];
    for (int i = first; i < end; i++)
        if (reach.in_area >> p->agency_hot[index->area_members[i]].type_id & 1)
            mark(self, index->area_members[i]);
    for (int i = 0; i < index->n_everywhere; i++)
        if (reach.in_area >> p->agency_hot[index->everywhere[i]].type_id & 1)
            mark(self, index->everywhere[i]);
}

/*  Deciding's checks of the recipient alone: not the originator, cleared
 *  for the level, allowed by the handling code (approvals aside: they are
 *  per call, and a candidate need not be delivered to). */
static bool may_receive(const cv_policy_t *p, const route_t *r, int agency)
{
    const cv_agency_hot_t *to = &p->agency_hot[agency];
    const cv_handling_code_t *code = r->code;
    return agency != r->originator && r->level <= to->clearance &&
           (!code || !code->has_to || cv_agency_set_has_type(&code->to, to->type_id, agency)) &&
           (!code || !code->same_organisation || to->org_id == r->org_id);
}

/*  The marked agencies that may receive, ascending; clears the marks. */
static int collect(const cv_policy_t *p, const route_t *r, cv_candidates_t *self)
{
    int n = 0;
    for (int w = 0; w < (p->n_agencies + 63) / 64; w++) {
        for (uint64_t bits = self->marked[w]; bits; bits &= bits - 1) {
            int agency = w * 64 + __builtin_ctzll(bits);
            if (may_receive(p, r, agency))
                self->list[n++] = agency;
        }
        self->marked[w] = 0;
    }
    return n;
}

static void reserve(cv_candidates_t *self, int agencies)
{
    if (self->cap >= agencies)
        return;
    size_t words = ((size_t)agencies + 63) / 64;
    free(self->marked);
    free(self->list);
    self->marked = cv_xcalloc(words, sizeof *self->marked);
    self->list = cv_xcalloc((size_t)agencies, sizeof *self->list);
    self->cap = agencies;
}

int cv_policy_candidates(const cv_policy_t *self, const Caveat__Report *report,
                         cv_candidates_t *scratch, const int **agencies)
{
    reserve(scratch, self->n_agencies);
    *agencies = scratch->list;
    route_t r;
    if (!route_of(self, report, &r))
        return 0;
    cv_reach_t reach = *reach_at(self, r.type_id, r.category, r.level);
    add_named(self, &r, &reach, scratch);
    mark_types(self, &r, reach, scratch);
    return collect(self, &r, scratch);
}
