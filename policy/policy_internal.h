/*  policy_internal.h: the compiled form of a policy, shared by the files of
 *  the policy library only. Built once by cv_policy_load.c, then read-only.
 */
#ifndef CV_POLICY_INTERNAL_H
#define CV_POLICY_INTERNAL_H

#include "cv_policy.h"

#define CV_MAX_CATEGORIES 64 /* category sets are uint64_t bitmasks */
#define CV_MAX_TYPES      64 /* so are agency-type sets */

/*  What an entry grants for one field, ordered so that the most protective
 *  outcome is the largest: combining entries is a max(). NONE means the
 *  entry says nothing about the field (not granted). */
typedef enum {
    CV_GRANT_NONE = 0,
    CV_GRANT_SHARE,
    CV_GRANT_YEAR,
    CV_GRANT_POSTCODE_DISTRICT,
    CV_GRANT_INITIALS,
    CV_GRANT_ROUND_1KM,
    CV_GRANT_PSEUDONYMISE,
    CV_GRANT_DENY,
} cv_grant_t;

#define CV_LEVELS_MAX 256 /* decisions hold a level in a uint8_t */

/*  A set of agencies: by type, by id, or everyone. */
typedef struct {
    uint64_t types;    /* bit per type id */
    uint8_t *agencies; /* one byte per agency index, or NULL when none listed */
    bool any;          /* neither types nor agencies given */
} cv_agency_set_t;

/*  A rule or a screening entry. */
typedef struct {
    char *name;
    bool screening;
    char *feed;          /* screening only */
    uint64_t categories; /* rules: the categories it covers */
    cv_agency_set_t from;
    cv_agency_set_t to;
    bool same_area;
    int max_level;   /* highest level index it may carry */
    uint8_t *grants; /* cv_grant_t per schema node: a row of the policy's grants */
    bool notice;     /* fields: {} — the envelope alone, on purpose */
    bool grants_any; /* some field shared or masked: an entry that only denies delivers nothing */
    bool shares_all; /* every field of the schema shared as it is (fields: {"*": share}) */
    bool pseudonymises; /* some field masked by pseudonymise: its view depends on the recipient */
    /* screening match: any one of these */
    uint64_t match_categories;
    char **match_indicators;
    int n_match_indicators;
    char **match_keywords; /* lowercased */
    int n_match_keywords;
} cv_entry_t;

/*  A restriction (top-level restrictions:): caps the fields of every
 *  delivery it names, after the rules and screening entries, whatever they
 *  grant. Laid out like cv_entry_t (name, categories, from, to, a row of
 *  grants) so that tools reading rules read restrictions the same way. */
typedef struct {
    char *name;
    int line, column;    /* of its name in the policy file, 1-based */
    uint64_t categories; /* every category when none are listed */
    cv_agency_set_t from;
    cv_agency_set_t to;
    cv_agency_set_t except_to; /* .any: no exception */
    uint8_t *grants;           /* cv_grant_t per schema node: deny, a mask, or NONE */
} cv_restriction_t;

typedef struct {
    char *code;
    cv_agency_set_t to; /* empty unless to_types/to_agencies given */
    bool has_to;
    bool same_organisation;
    bool originator_approval;
} cv_handling_code_t;

/*  Rules in buckets (CSR form): per category, the rules without same_area
 *  then those with it, each part by max_level from the highest down, each
 *  bucket in policy order. So the rules a report at level L may match are
 *  two contiguous runs; see cv_rule_bucket. */
typedef struct {
    int *buckets; /* cv_rule_bucket(p, n_categories, 0, 0) + 1 offsets */
    int *rules;
} cv_rule_index_t;

typedef struct {
    cv_agency_t pub; /* what cv_policy.h shows */
    int type_id;
    int org_id;
} cv_agency_internal_t;

/*  A rule that names an agency in to_agencies where the agency's type would
 *  not reach it, with what deciding checks of it (cv_entry_t is cold). */
typedef struct {
    uint64_t categories;
    int rule;
    int max_level;
    bool same_area;
} cv_listed_t;

/*  What cv_policy_decide reads of an agency, packed (44 bytes) in one
 *  array, with its lists in shared pools: an agency itself spans several
 *  cache lines and is cold when a report is decided for each in turn. The
 *  rules that may send to it are those of its type (type_rules[type_id],
 *  shared, so small enough to stay in cache) and its listed ones. */
typedef struct {
    int type_id, org_id, clearance;
    bool all_areas;
    int area_first, n_areas;     /* its areas, interned, in area_pool */
    int listed_first, n_listed;  /* in listed_pool, ascending */
    int screen_first, n_screens; /* screening entries that may send to it, in screen_pool */
    int restriction_group;       /* agencies that the same restrictions may reach */
} cv_agency_hot_t;

/*  What the decision loop reads per candidate rule, packed (16 bytes) so
 *  that the scan stays in cache: the rest of cv_entry_t is cold. */
typedef struct {
    uint64_t from_types; /* all ones when any originator */
    int from_first;      /* from_agencies: sorted agency indexes in from_pool */
    int from_count;
} cv_entry_hot_t;

/*  Who a report may go to, without deciding for every agency
 *  (cv_candidates.c): the agency types that the entries naming the
 *  originator by type reach, per (originator type, category, level), and
 *  the few entries that name agencies, checked per report. Membership
 *  lists turn types and areas into agencies. Never smaller than the truth:
 *  every agency that cv_policy_decide releases a report to is a candidate
 *  (tests/test_policy_candidates.c holds it). */
typedef struct {
    uint64_t anywhere; /* agency types reached whatever the report's area */
    uint64_t in_area;  /* agency types reached only where they serve the report's area */
} cv_reach_t;

typedef struct {
    cv_reach_t *reach; /* (type * n_categories + category) * n_levels + level */
    int *named_first;  /* per category + 1, into named: CSR */
    int *named;        /* entries that list originators or recipients by agency */
    int *to_first;     /* per entry + 1, into to_pool */
    int *to_pool;      /* each entry's to_agencies, ascending */
    int *type_first;   /* per type + 1, into type_pool */
    int *type_pool;    /* agencies by type, ascending */
    int *area_first;   /* per interned area + 1, into area_members */
    int *area_members; /* the agencies serving each area, "*" ones apart */
    int *everywhere;   /* agencies with areas ["*"] */
    int n_everywhere;
} cv_route_index_t;

/*  Open addressing over agency indexes, -1 for an empty slot: lookups by
 *  id (every decision) and by key (every message the broker receives). */
typedef struct {
    int *slots;
    unsigned mask;
} cv_table_t;

struct cv_policy_t {
    char *name; /* file name, for messages */
    char *protocol;
    int64_t version;
    char hash[65];
    uint8_t pseudonym_key[CV_KEY_BYTES];
    const cv_schema_t *schema;

    char **levels;
    int n_levels;
    char **categories;
    int n_categories;
    /* retention per category, seconds (0: kept), and the rule's text; slot
     * n_categories is the default; NULL when the policy has no retention */
    int64_t *retention;
    char **retention_text;
    char **types; /* agency types that agencies have */
    int n_types;
    char **organisations;
    int n_organisations;

    cv_agency_internal_t *agencies;
    int n_agencies;
    cv_table_t by_id; /* filled as agencies load, so the loader uses it too */
    cv_table_t by_key;
    cv_agency_hot_t *agency_hot;
    const char **area_names; /* interned: the agencies' own strings */
    int n_area_names;
    cv_table_t by_area;
    int *area_pool;
    cv_listed_t *listed_pool;
    int *screen_pool;
    cv_rule_index_t *type_rules; /* per agency type: rules whose to_types include it */
    cv_entry_hot_t *hot;         /* per entry */
    int *from_pool;
    cv_handling_code_t *codes;
    int n_codes;
    cv_entry_t *entries; /* rules first, then screening entries */
    uint8_t *grants;     /* entry e's row at e * schema size: views read a few rows */
    int n_entries;
    int n_rules;

    cv_restriction_t *restrictions; /* in policy order */
    uint8_t *restriction_grants;    /* restriction r's row at r * schema size */
    int n_restrictions;
    /* Restrictions by (recipient group, category), CSR: those that may apply
     * to a report of category c for an agency of group g are
     * restriction_pool[restriction_buckets[g * n_categories + c] ..
     * restriction_buckets[g * n_categories + c + 1]), ascending; their
     * originators in restriction_hot. Groups gather the agencies that the
     * same restrictions reach (to, except_to), so most are a few. */
    int n_restriction_groups;
    int *restriction_buckets;
    int *restriction_pool;
    cv_entry_hot_t *restriction_hot; /* per restriction; from_pool is shared */
    /* per schema node: 1 when some restriction denies it. A delivery with a
     * field that goes and that no restriction ever denies is delivered
     * whatever restrictions apply to it (cv_decision.c). */
    uint8_t *restriction_denies;
    /* per schema node: 1 when some entry or restriction masks it, so that a
     * value a view holds may not be the report's (cv_decision.c) */
    uint8_t *masked_somewhere;
    cv_route_index_t route; /* candidates per report (cv_candidates.c) */
};

/*  Lookups by name: index or -1. */
int cv_policy_category_find(const cv_policy_t *self, const char *name);
int cv_policy_type_find(const cv_policy_t *self, const char *name);
const cv_handling_code_t *cv_policy_code_find(const cv_policy_t *self, const char *code);

/*  Whether agency index, of type type_id, is in set. Inline: the loader,
 *  graph and diff test many (agency, entry) pairs. */
static inline bool cv_agency_set_has_type(const cv_agency_set_t *set, int type_id, int index)
{
    return set->any || (set->types >> type_id & 1) || (set->agencies && set->agencies[index]);
}

static inline bool cv_agency_set_has(const cv_agency_set_t *set, const cv_agency_internal_t *agency,
                                     int index)
{
    return cv_agency_set_has_type(set, agency->type_id, index);
}

/*  Index into cv_rule_index_t.buckets of the bucket (category, same_area,
 *  rank), rank 0 holding the rules of the highest max_level. */
static inline int cv_rule_bucket(const cv_policy_t *p, int category, int same_area, int rank)
{
    return (category * 2 + same_area) * p->n_levels + rank;
}

/*  Hash tables (cv_policy.c): FNV-1a, linear probing. */
unsigned cv_hash(const void *bytes, size_t len);
void cv_table_init(cv_table_t *table, int items);
void cv_table_add(cv_table_t *table, unsigned hash, int index);
void cv_table_free(cv_table_t *table);
void cv_policy_index_agency(cv_policy_t *self, int index);          /* adds id and key */
int cv_policy_area_find(const cv_policy_t *self, const char *area); /* interned id, or -1 */
/*  True when agency's areas include area (or are "*"): same_area, and the
 *  rule that a report's area is one of its originator's. */
bool cv_agency_covers(const cv_policy_t *p, const cv_agency_hot_t *agency, const char *area);
/*  The same with the area interned (cv_policy_area_find; -1 for one no
 *  agency serves). */
bool cv_agency_serves(const cv_policy_t *p, const cv_agency_hot_t *agency, int area);

/*  Restrictions (cv_restriction.c).
 *  Builds the restriction index (groups, buckets, pool) once loaded. */
void cv_restrictions_index(cv_policy_t *p);
/*  True when restriction r may reach agency index `to`: in its to, not in
 *  its except_to. */
bool cv_restriction_to(const cv_policy_t *p, int r, int to);
/*  The restrictions that apply to a report of category from agency `from`
 *  to agency `to` (indexes), in policy order, into out (room for
 *  n_restrictions); returns how many. For tools; deciding reads the
 *  index directly. */
int cv_restrictions_for(const cv_policy_t *p, int category, int from, int to, int *out);
/*  Caps grant (a row per schema node) with restriction r's row: a field
 *  granted keeps the more protective of the two outcomes; a field not
 *  granted stays so (a restriction never grants). */
void cv_restriction_cap(const cv_policy_t *p, int r, uint8_t *grant, size_t size);
/*  True when originator index `from` is among the restriction's. */
bool cv_restriction_from(const cv_policy_t *p, int r, int from);

/*  Whether packed originators (an entry's or a restriction's) include
 *  agency `from`, of type type_id: by type, or listed in from_pool. */
static inline bool cv_hot_from(const cv_policy_t *p, const cv_entry_hot_t *hot, int type_id,
                               int from)
{
    if (hot->from_types >> type_id & 1)
        return true;
    for (int i = 0; i < hot->from_count; i++)
        if (p->from_pool[hot->from_first + i] == from)
            return true;
    return false;
}

/*  Candidates (cv_candidates.c): builds p->route once the rest is
 *  indexed; frees it; and its size in bytes, for the benchmarks. */
void cv_route_index(cv_policy_t *p);
void cv_route_index_free(cv_policy_t *p);
size_t cv_route_index_bytes(const cv_policy_t *p);

/*  Masks (cv_mask.c). Each returns a malloc'd masked string, or NULL when
 *  the value does not have the shape the mask needs: the caller withholds
 *  it then, failing closed. */
char *cv_mask_year(const char *value);
char *cv_mask_postcode_district(const char *value);
char *cv_mask_initials(const char *value);
double cv_mask_round_1km(double value);
char *cv_mask_pseudonymise(const uint8_t key[CV_KEY_BYTES], const char *organisation,
                           const char *value);

/*  The same masks written into out, for a view built without mallocs:
 *  out holds CV_MASK_MAX bytes, or 2 * strlen(value) + 1 for initials.
 *  False, with nothing written, when the mask does not fit the value. */
#define CV_MASK_MAX 32
bool cv_mask_year_into(const char *value, char *out);
bool cv_mask_postcode_district_into(const char *value, char *out);
bool cv_mask_initials_into(const char *value, char *out);
void cv_mask_pseudonymise_into(const uint8_t key[CV_KEY_BYTES], const char *organisation,
                               const char *value, char *out);

const char *cv_grant_name(cv_grant_t grant); /* "share", "mask:year", ... */
/*  True when grant can apply to every leaf in the node range [index, end). */
bool cv_grant_fits(const cv_schema_t *schema, int index, cv_grant_t grant);

#endif
