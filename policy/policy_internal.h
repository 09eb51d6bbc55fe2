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
    uint8_t *grants; /* cv_grant_t per schema node */
    /* screening match: any one of these */
    uint64_t match_categories;
    char **match_indicators;
    int n_match_indicators;
    char **match_keywords; /* lowercased */
    int n_match_keywords;
} cv_entry_t;

typedef struct {
    char *code;
    cv_agency_set_t to; /* empty unless to_types/to_agencies given */
    bool has_to;
    bool same_organisation;
    bool originator_approval;
} cv_handling_code_t;

typedef struct {
    cv_agency_t pub; /* what cv_policy.h shows */
    int type_id;
    int org_id;
    /* rules whose recipients include this agency, by category (CSR form) */
    int *rule_offsets; /* n_categories + 1 */
    int *rules;
    int *screens; /* screening entries whose recipients include it */
    int n_screens;
} cv_agency_internal_t;

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
    char **types; /* agency types that agencies have */
    int n_types;
    char **organisations;
    int n_organisations;

    cv_agency_internal_t *agencies;
    int n_agencies;
    int *agencies_by_id; /* agency indexes sorted by id, for bsearch */
    cv_handling_code_t *codes;
    int n_codes;
    cv_entry_t *entries; /* rules first, then screening entries */
    int n_entries;
    int n_rules;
};

/*  Lookups by name: index or -1. */
int cv_policy_category_find(const cv_policy_t *self, const char *name);
int cv_policy_type_find(const cv_policy_t *self, const char *name);
const cv_handling_code_t *cv_policy_code_find(const cv_policy_t *self, const char *code);

bool cv_agency_set_has(const cv_agency_set_t *set, const cv_agency_internal_t *agency, int index);

/*  Masks (cv_mask.c). Each returns a malloc'd masked string, or NULL when
 *  the value does not have the shape the mask needs: the caller withholds
 *  it then, failing closed. */
char *cv_mask_year(const char *value);
char *cv_mask_postcode_district(const char *value);
char *cv_mask_initials(const char *value);
double cv_mask_round_1km(double value);
char *cv_mask_pseudonymise(const uint8_t key[CV_KEY_BYTES], const char *organisation,
                           const char *value);

const char *cv_grant_name(cv_grant_t grant); /* "share", "mask:year", ... */
/*  True when grant can apply to every leaf in the node range [index, end). */
bool cv_grant_fits(const cv_schema_t *schema, int index, cv_grant_t grant);

#endif
