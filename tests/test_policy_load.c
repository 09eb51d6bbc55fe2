/*  test_policy_load.c: loading and validating a policy (policy/cv_policy_load.c).
 *
 *  Every validation error is checked with its exact text and position,
 *  "FILE:LINE:COL: error: what", because that line is all a protocol
 *  administrator sees. Each error case also checks that nothing is
 *  half-loaded (NULL comes back); the sanitizer build checks that every
 *  error path frees what it had built.
 *
 *  The policies are inline strings; a comment gives each line's number.
 *  Columns are 1-based and point at the offending token (a quoted
 *  scalar's opening quote; for a mapping, its first key).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>
#include <zmq.h>

#include "cv_policy.h"
#include "policy_internal.h" /* a restriction's compiled form */

/*  CURVE public keys made once with zmq_curve_keypair. */
#define K1 "kY8[f}w2}*bW5UFN>7fbWOR$QBz=n<qa*v:t*tLN"
#define K2 "XSEn)f@J2=]&MH9eu{9=<ITtalLpr[tWw7}B2APp"
#define K3 "CLfC.xK:.*ZR&AbkJ*pG:Ebz/ngx4P>9I!8PrmR>"
#define K4 "6PtBJ>RC})VCt&o)&*ZTVgivQwNGu*WDw*8}u>[j"
#define K5 "92$PrU]*rf!D3=TM5twcy+MV*?N)!+QEQV3}M<9u"

/*  Policies are data, one YAML line per source line: clang-format is off
 *  for them. */
/* clang-format off */
/*  Lines 1-4. */
#define PREFIX                                                                                     \
    "protocol: test-protocol\n"                         /* 1 */                                    \
    "version: 3\n"                                      /* 2 */                                    \
    "levels: [OFFICIAL, OFFICIAL-SENSITIVE, SECRET]\n"  /* 3 */                                    \
    "agencies:\n"                                       /* 4 */

/*  Lines 5-10. */
#define POLICE                                                                                     \
    "  hull-police:\n"                                  /* 5 */                                    \
    "    organisation: humberside-police\n"             /* 6 */                                    \
    "    type: police\n"                                /* 7 */                                    \
    "    clearance: SECRET\n"                           /* 8 */                                    \
    "    areas: [hull]\n"                               /* 9 */                                    \
    "    key: \"" K1 "\"\n"                             /* 10 */

/*  Lines 11-16: the council, ending inside its mapping. */
#define COUNCIL                                                                                    \
    "  hull-cc:\n"                                      /* 11 */                                   \
    "    organisation: hull-city-council\n"             /* 12 */                                   \
    "    type: local_authority\n"                       /* 13 */                                   \
    "    clearance: OFFICIAL-SENSITIVE\n"               /* 14 */                                   \
    "    areas: [hull]\n"                               /* 15 */                                   \
    "    key: \"" K2 "\"\n"                             /* 16 */

#define HEADER PREFIX POLICE COUNCIL

/*  Lines 17-21: one rule, open for more keys at line 22. */
#define RULE_HEAD                                                                                  \
    "rules:\n"                                          /* 17 */                                   \
    "  - name: r1\n"                                    /* 18 */                                   \
    "    categories: [vulnerable_individual]\n"         /* 19 */                                   \
    "    to_types: [local_authority]\n"                 /* 20 */
/* clang-format on */

/* ------------------------------------------------------------------------ */

typedef struct {
    const char *yaml;
    int line; /* expected position; col 0: any column on that line */
    int col;
    const char *what; /* the text after "error: " */
} error_case_t;

static void check_error(void **state)
{
    const error_case_t *c = *state;
    cv_error_t err = {0};
    cv_policy_t *policy = cv_policy_load_buffer(c->yaml, strlen(c->yaml), "p.yaml", NULL, &err);
    if (policy) {
        cv_policy_destroy(&policy);
        fail_msg("the policy loaded; expected error: %s", c->what);
    }
    char expected[600];
    if (c->col) {
        snprintf(expected, sizeof expected, "p.yaml:%d:%d: error: %s", c->line, c->col, c->what);
        assert_string_equal(err.msg, expected);
        return;
    }
    /* the line and the text must match; the column may be anywhere on it */
    char prefix[32];
    snprintf(prefix, sizeof prefix, "p.yaml:%d:", c->line);
    snprintf(expected, sizeof expected, ": error: %s", c->what);
    const char *rest =
        strncmp(err.msg, prefix, strlen(prefix)) == 0 ? err.msg + strlen(prefix) : NULL;
    if (rest)
        rest += strspn(rest, "0123456789");
    if (!rest || rest == err.msg + strlen(prefix) || strcmp(rest, expected) != 0)
        fail_msg("got      \"%s\"\nexpected \"p.yaml:%d:COL: error: %s\"", err.msg, c->line,
                 c->what);
}

/* clang-format off */
/* ------------------------------------------------------------------------ */
/*  YAML itself.                                                            */

static const error_case_t syntax_sequence = {
    HEADER "rules: - name: x\n", /* 17 */
    17, 8, "block sequence on the same line as a mapping key"};

static const error_case_t syntax_bracket = {
    HEADER "description: [a, b]]\n", /* 17 */
    17, 20, "flow sequence with invalid extra closing bracket"};

/*  libfyaml refuses duplicate keys itself, naming the second one. */
static const error_case_t duplicate_top_key = {
    HEADER "protocol: other\n", /* 17 */
    17, 1, "duplicate key 'protocol'"};

static const error_case_t duplicate_agency_id = {
    PREFIX POLICE
    "  hull-police:\n"                       /* 11 */
    "    organisation: hull-city-council\n"  /* 12 */
    "    type: local_authority\n"            /* 13 */
    "    clearance: OFFICIAL\n"              /* 14 */
    "    areas: [hull]\n"                    /* 15 */
    "    key: \"" K2 "\"\n",                 /* 16 */
    11, 3, "duplicate key 'hull-police'"};

/*  A name that would show as another: an agency id with a right-to-left
 *  override, written as a YAML escape, which shows what follows it
 *  reversed; and a NUL, which would cut a name short. */
static const error_case_t agency_id_with_override = {
    PREFIX POLICE
    "  \"hull\\u202ecc\":\n"                  /* 11 */
    "    organisation: hull-city-council\n"  /* 12 */
    "    type: local_authority\n"            /* 13 */
    "    clearance: OFFICIAL\n"              /* 14 */
    "    areas: [hull]\n"                    /* 15 */
    "    key: \"" K2 "\"\n",                 /* 16 */
    11, 3, "agencies: a control character, line separator or bidirectional control character "
           "(written as a YAML escape, perhaps), which would show as something else"};

static const error_case_t organisation_with_nul = {
    PREFIX POLICE
    "  hull-cc:\n"                            /* 11 */
    "    organisation: \"hull\\0-police\"\n"  /* 12 */
    "    type: local_authority\n"            /* 13 */
    "    clearance: OFFICIAL\n"              /* 14 */
    "    areas: [hull]\n"                    /* 15 */
    "    key: \"" K2 "\"\n",                 /* 16 */
    12, 19, "agency 'hull-cc': organisation: a control character, line separator or "
            "bidirectional control character (written as a YAML escape, perhaps), which would "
            "show as something else"};

static const error_case_t not_a_mapping = {
    "- protocol\n", 1, 3, "policy: expected a mapping"};

/* ------------------------------------------------------------------------ */
/*  Top level.                                                              */

static const error_case_t unknown_top_key = {
    HEADER "colour: red\n", /* 17 */
    17, 1, "policy: unknown key 'colour'"};

static const error_case_t retention_unknown_category = {
    HEADER "retention:\n"                          /* 17 */
    "  gossip: 1y\n",                              /* 18 */
    18, 3, "retention: unknown category 'gossip'"};

static const error_case_t retention_bad_period = {
    HEADER "retention:\n"                          /* 17 */
    "  feedback: 18 months\n",                     /* 18 */
    18, 13, "retention.feedback: expected a period such as 90d, 2w or 6y (1 to 1000), "
            "not '18 months'"};

static const error_case_t retention_zero_period = {
    HEADER "retention:\n"                          /* 17 */
    "  default: 0y\n",                             /* 18 */
    18, 12, "retention.default: expected a period such as 90d, 2w or 6y (1 to 1000), not '0y'"};

/*  A number without a unit: the reader once looked at the byte after the
 *  string's end for one (AddressSanitizer: heap-buffer-overflow). */
static const error_case_t retention_no_unit = {
    HEADER "retention: {default: 2}\n",           /* 17 */
    17, 22, "retention.default: expected a period such as 90d, 2w or 6y (1 to 1000), not '2'"};

static const error_case_t missing_protocol = {
    "version: 3\n"                                      /* 1 */
    "levels: [OFFICIAL]\n"                              /* 2 */
    "agencies:\n"                                       /* 3 */
    "  a: {organisation: o, type: t, clearance: OFFICIAL, areas: [x], key: \"" K1 "\"}\n",
    1, 1, "policy: missing 'protocol'"};

static const error_case_t missing_version = {
    "protocol: p\n"                                     /* 1 */
    "levels: [OFFICIAL]\n"                              /* 2 */
    "agencies:\n"                                       /* 3 */
    "  a: {organisation: o, type: t, clearance: OFFICIAL, areas: [x], key: \"" K1 "\"}\n",
    1, 1, "policy: missing 'version'"};

static const error_case_t missing_levels = {
    "protocol: p\n"                                     /* 1 */
    "version: 1\n"                                      /* 2 */
    "agencies:\n"                                       /* 3 */
    "  a: {organisation: o, type: t, clearance: OFFICIAL, areas: [x], key: \"" K1 "\"}\n",
    1, 1, "policy: missing 'levels'"};

static const error_case_t missing_agencies = {
    "protocol: p\n"         /* 1 */
    "version: 1\n"          /* 2 */
    "levels: [OFFICIAL]\n", /* 3 */
    1, 1, "policy: missing 'agencies'"};

static const error_case_t bad_version = {
    "protocol: p\n"         /* 1 */
    "version: seven\n"      /* 2 */
    "levels: [OFFICIAL]\n", /* 3 */
    2, 10, "version: expected a whole number, not 'seven'"};

static const error_case_t negative_version = {
    "protocol: p\n"         /* 1 */
    "version: -1\n"         /* 2 */
    "levels: [OFFICIAL]\n", /* 3 */
    2, 10, "version: expected a whole number, not '-1'"};

static const error_case_t empty_levels = {
    "protocol: p\n" /* 1 */
    "version: 1\n"  /* 2 */
    "levels: []\n", /* 3 */
    3, 0, "levels: at least one level is needed"};

static const error_case_t level_twice = {
    "protocol: p\n"                             /* 1 */
    "version: 1\n"                              /* 2 */
    "levels: [OFFICIAL, SECRET, OFFICIAL]\n",   /* 3 */
    3, 28, "levels: 'OFFICIAL' is listed twice"};

static const error_case_t empty_agencies = {
    "protocol: p\n"        /* 1 */
    "version: 1\n"         /* 2 */
    "levels: [OFFICIAL]\n" /* 3 */
    "agencies: {}\n",      /* 4 */
    4, 0, "agencies: at least one agency is needed"};

/*  A policy with its own categories knows only those. */
static const error_case_t own_categories = {
    HEADER
    "categories: [referral, tension]\n"  /* 17 */
    "rules:\n"                           /* 18 */
    "  - name: r1\n"                     /* 19 */
    "    categories: [vulnerable_individual]\n" /* 20 */
    "    to_types: [local_authority]\n"  /* 21 */
    "    fields: {summary: share}\n",    /* 22 */
    20, 18, "rule 'r1': categories: unknown category 'vulnerable_individual'"};

static const error_case_t unknown_administrator = {
    HEADER "administrators: [nobody]\n", /* 17 */
    17, 18, "administrators: unknown agency 'nobody'"};

/* ------------------------------------------------------------------------ */
/*  Agencies.                                                               */

static const error_case_t agency_unknown_key = {
    HEADER "    colour: red\n", /* 17 */
    17, 5, "agency 'hull-cc': unknown key 'colour'"};

static const error_case_t agency_missing_type = {
    PREFIX POLICE
    "  hull-cc:\n"                           /* 11 */
    "    organisation: hull-city-council\n"  /* 12 */
    "    clearance: OFFICIAL-SENSITIVE\n"    /* 13 */
    "    areas: [hull]\n"                    /* 14 */
    "    key: \"" K2 "\"\n",                 /* 15 */
    12, 5, "agency 'hull-cc': missing 'type'"};

static const error_case_t agency_missing_key = {
    PREFIX POLICE
    "  hull-cc:\n"                           /* 11 */
    "    organisation: hull-city-council\n"  /* 12 */
    "    type: local_authority\n"            /* 13 */
    "    clearance: OFFICIAL-SENSITIVE\n"    /* 14 */
    "    areas: [hull]\n",                   /* 15 */
    12, 5, "agency 'hull-cc': missing 'key'"};

static const error_case_t agency_unknown_clearance = {
    PREFIX POLICE
    "  hull-cc:\n"                           /* 11 */
    "    organisation: hull-city-council\n"  /* 12 */
    "    type: local_authority\n"            /* 13 */
    "    clearance: TOP-SECRET\n"            /* 14 */
    "    areas: [hull]\n"                    /* 15 */
    "    key: \"" K2 "\"\n",                 /* 16 */
    14, 16, "agency 'hull-cc': clearance: unknown level 'TOP-SECRET'"};

static const error_case_t agency_no_areas = {
    PREFIX POLICE
    "  hull-cc:\n"                           /* 11 */
    "    organisation: hull-city-council\n"  /* 12 */
    "    type: local_authority\n"            /* 13 */
    "    clearance: OFFICIAL\n"              /* 14 */
    "    areas: []\n"                        /* 15 */
    "    key: \"" K2 "\"\n",                 /* 16 */
    15, 0, "agency 'hull-cc': areas: at least one area (or \"*\") is needed"};

static const error_case_t agency_same_key = {
    PREFIX POLICE
    "  hull-cc:\n"                           /* 11 */
    "    organisation: hull-city-council\n"  /* 12 */
    "    type: local_authority\n"            /* 13 */
    "    clearance: OFFICIAL\n"              /* 14 */
    "    areas: [hull]\n"                    /* 15 */
    "    key: \"" K1 "\"\n",                 /* 16 */
    16, 10, "agency 'hull-cc': key: the same key as agency 'hull-police'"};

static const error_case_t next_key_same_as_another = {
    PREFIX POLICE
    "  hull-cc:\n"                           /* 11 */
    "    organisation: hull-city-council\n"  /* 12 */
    "    type: local_authority\n"            /* 13 */
    "    clearance: OFFICIAL\n"              /* 14 */
    "    areas: [hull]\n"                    /* 15 */
    "    key: [\"" K2 "\", \"" K1 "\"]\n",    /* 16 */
    16, 55, "agency 'hull-cc': key: the same key as agency 'hull-police'"};

static const error_case_t next_key_twice = {
    PREFIX POLICE
    "  hull-cc:\n"                           /* 11 */
    "    organisation: hull-city-council\n"  /* 12 */
    "    type: local_authority\n"            /* 13 */
    "    clearance: OFFICIAL\n"              /* 14 */
    "    areas: [hull]\n"                    /* 15 */
    "    key: [\"" K2 "\", \"" K2 "\"]\n",    /* 16 */
    16, 55, "agency 'hull-cc': key: the same key twice"};

static const error_case_t three_keys = {
    PREFIX POLICE
    "  hull-cc:\n"                           /* 11 */
    "    organisation: hull-city-council\n"  /* 12 */
    "    type: local_authority\n"            /* 13 */
    "    clearance: OFFICIAL\n"              /* 14 */
    "    areas: [hull]\n"                    /* 15 */
    "    key: [\"" K2 "\", \"" K3 "\", \"" K4 "\"]\n", /* 16 */
    16, 11, "agency 'hull-cc': key: one key, or two while it is rotated ([current, next]), not 3"};

#define BAD_KEY_MESSAGE "agency 'hull-cc': key: not a Z85 CURVE public key (40 characters)"

static const error_case_t key_too_short = {
    PREFIX POLICE
    "  hull-cc:\n"                           /* 11 */
    "    organisation: hull-city-council\n"  /* 12 */
    "    type: local_authority\n"            /* 13 */
    "    clearance: OFFICIAL\n"              /* 14 */
    "    areas: [hull]\n"                    /* 15 */
    "    key: \"XSEn)f@J2=]&MH9eu{9=<ITtalLpr[tWw7}B2AP\"\n", /* 16: 39 characters */
    16, 10, BAD_KEY_MESSAGE};

static const error_case_t key_too_long = {
    PREFIX POLICE
    "  hull-cc:\n"                           /* 11 */
    "    organisation: hull-city-council\n"  /* 12 */
    "    type: local_authority\n"            /* 13 */
    "    clearance: OFFICIAL\n"              /* 14 */
    "    areas: [hull]\n"                    /* 15 */
    "    key: \"" K2 "XSEn)\"\n",            /* 16: 45 characters */
    16, 10, BAD_KEY_MESSAGE};

static const error_case_t key_bad_character = {
    PREFIX POLICE
    "  hull-cc:\n"                           /* 11 */
    "    organisation: hull-city-council\n"  /* 12 */
    "    type: local_authority\n"            /* 13 */
    "    clearance: OFFICIAL\n"              /* 14 */
    "    areas: [hull]\n"                    /* 15 */
    "    key: \"XSEn)f@J2=]&MH9eu{9=<ITtalLpr[tWw7}B2A~p\"\n", /* 16: '~' is not Z85 */
    16, 10, BAD_KEY_MESSAGE};

static const error_case_t key_plain_bad_character = {
    PREFIX POLICE
    "  hull-cc:\n"                           /* 11 */
    "    organisation: hull-city-council\n"  /* 12 */
    "    type: local_authority\n"            /* 13 */
    "    clearance: OFFICIAL\n"              /* 14 */
    "    areas: [hull]\n"                    /* 15 */
    "    key: abcdefghij,bcdefghijabcdefghijabcdefghij\n", /* 16: ',' is not Z85 */
    16, 10, BAD_KEY_MESSAGE};

/* ------------------------------------------------------------------------ */
/*  Rules.                                                                  */

static const error_case_t rule_unknown_key = {
    HEADER RULE_HEAD
    "    colour: red\n"                /* 21 */
    "    fields: {summary: share}\n",  /* 22 */
    21, 5, "rule 'r1': unknown key 'colour'"};

static const error_case_t rule_without_to = {
    HEADER
    "rules:\n"                                   /* 17 */
    "  - name: r1\n"                             /* 18 */
    "    categories: [vulnerable_individual]\n"  /* 19 */
    "    fields: {summary: share}\n",            /* 20 */
    18, 5, "rule 'r1': needs to_types or to_agencies"};

static const error_case_t rule_without_name = {
    HEADER
    "rules:\n"                                   /* 17 */
    "  - categories: [vulnerable_individual]\n"  /* 18 */
    "    to_types: [local_authority]\n"          /* 19 */
    "    fields: {summary: share}\n",            /* 20 */
    18, 5, "rules[0]: missing 'name'"};

static const error_case_t rule_without_categories = {
    HEADER
    "rules:\n"                           /* 17 */
    "  - name: r1\n"                     /* 18 */
    "    to_types: [local_authority]\n"  /* 19 */
    "    fields: {summary: share}\n",    /* 20 */
    18, 5, "rule 'r1': missing 'categories'"};

static const error_case_t rule_without_fields = {
    HEADER RULE_HEAD, 18, 5, "rule 'r1': missing 'fields'"};

static const error_case_t rule_unknown_category = {
    HEADER
    "rules:\n"                           /* 17 */
    "  - name: r1\n"                     /* 18 */
    "    categories: [gossip]\n"         /* 19 */
    "    to_types: [local_authority]\n"  /* 20 */
    "    fields: {summary: share}\n",    /* 21 */
    19, 18, "rule 'r1': categories: unknown category 'gossip'"};

static const error_case_t rule_no_categories = {
    HEADER
    "rules:\n"                           /* 17 */
    "  - name: r1\n"                     /* 18 */
    "    categories: []\n"               /* 19 */
    "    to_types: [local_authority]\n"  /* 20 */
    "    fields: {summary: share}\n",    /* 21 */
    19, 0, "rule 'r1': categories: at least one category is needed"};

static const error_case_t rule_unknown_to_type = {
    HEADER
    "rules:\n"                                   /* 17 */
    "  - name: r1\n"                             /* 18 */
    "    categories: [vulnerable_individual]\n"  /* 19 */
    "    to_types: [health]\n"                   /* 20 */
    "    fields: {summary: share}\n",            /* 21 */
    20, 16, "rule 'r1': to_types: no agency has type 'health'"};

static const error_case_t rule_unknown_from_type = {
    HEADER RULE_HEAD
    "    from_types: [health]\n"       /* 21 */
    "    fields: {summary: share}\n",  /* 22 */
    21, 18, "rule 'r1': from_types: no agency has type 'health'"};

static const error_case_t rule_unknown_to_agency = {
    HEADER
    "rules:\n"                                   /* 17 */
    "  - name: r1\n"                             /* 18 */
    "    categories: [vulnerable_individual]\n"  /* 19 */
    "    to_agencies: [hull-police, nobody]\n"   /* 20 */
    "    fields: {summary: share}\n",            /* 21 */
    20, 32, "rule 'r1': to_agencies: unknown agency 'nobody'"};

static const error_case_t rule_unknown_from_agency = {
    HEADER RULE_HEAD
    "    from_agencies: [nobody]\n"    /* 21 */
    "    fields: {summary: share}\n",  /* 22 */
    21, 21, "rule 'r1': from_agencies: unknown agency 'nobody'"};

static const error_case_t rule_unknown_max_level = {
    HEADER RULE_HEAD
    "    max_level: TOP\n"             /* 21 */
    "    fields: {summary: share}\n",  /* 22 */
    21, 16, "rule 'r1': max_level: unknown level 'TOP'"};

static const error_case_t rule_bad_same_area = {
    HEADER RULE_HEAD
    "    same_area: maybe\n"           /* 21 */
    "    fields: {summary: share}\n",  /* 22 */
    21, 16, "rule 'r1': same_area: expected true or false, not 'maybe'"};

static const error_case_t duplicate_rule_name = {
    HEADER RULE_HEAD
    "    fields: {summary: share}\n"               /* 21 */
    "  - name: r1\n"                               /* 22 */
    "    categories: [vulnerable_individual]\n"    /* 23 */
    "    to_types: [local_authority]\n"            /* 24 */
    "    fields: {summary: share}\n",              /* 25 */
    22, 11, "rule 'r1': name: 'r1' is the name of another entry"};

static const error_case_t screening_named_as_rule = {
    HEADER RULE_HEAD
    "    fields: {summary: share}\n"   /* 21 */
    "screening:\n"                     /* 22 */
    "  - name: r1\n"                   /* 23 */
    "    feed: ctio\n"                 /* 24 */
    "    to_types: [police]\n"         /* 25 */
    "    match: {keywords: [knife]}\n" /* 26 */
    "    fields: {summary: share}\n",  /* 27 */
    23, 11, "screening 'r1': name: 'r1' is the name of another entry"};

static const error_case_t empty_rule_name = {
    HEADER
    "rules:\n"                                   /* 17 */
    "  - name: \"\"\n"                           /* 18 */
    "    categories: [vulnerable_individual]\n"  /* 19 */
    "    to_types: [local_authority]\n"          /* 20 */
    "    fields: {summary: share}\n",            /* 21 */
    18, 11, "rules[0]: name: '' is empty"};

/* ------------------------------------------------------------------------ */
/*  Fields, grants and masks.                                               */

#define FIELDS_AT_22 HEADER RULE_HEAD "    fields:\n" /* 21 */

static const error_case_t unknown_field_path = {
    FIELDS_AT_22 "      subjects.nmae: share\n", /* 22 */
    22, 7, "rule 'r1': fields: unknown field path 'subjects.nmae'"};

static const error_case_t unknown_grant = {
    FIELDS_AT_22 "      summary: blur\n", /* 22 */
    22, 16, "rule 'r1': summary: expected share, deny, pseudonymise or {mask: NAME}, not 'blur'"};

static const error_case_t unknown_mask = {
    FIELDS_AT_22 "      summary: {mask: blur}\n", /* 22 */
    22, 23,
    "rule 'r1': summary: unknown mask 'blur' (year, postcode_district, initials, round_1km, pseudonymise)"};

static const error_case_t mask_unknown_key = {
    FIELDS_AT_22 "      summary: {mask: year, colour: red}\n", /* 22 */
    22, 29, "rule 'r1': summary: unknown key 'colour'"};

static const error_case_t mask_missing = {
    FIELDS_AT_22 "      summary: {}\n", /* 22 */
    22, 0, "rule 'r1': summary: missing 'mask'"};

static const error_case_t year_on_text = {
    FIELDS_AT_22 "      summary: {mask: year}\n", /* 22 */
    22, 17, "rule 'r1': summary: mask:year does not apply to every field under it"};

static const error_case_t round_on_string = {
    FIELDS_AT_22 "      location.name: {mask: round_1km}\n", /* 22 */
    22, 23, "rule 'r1': location.name: mask:round_1km does not apply to every field under it"};

static const error_case_t postcode_on_double = {
    FIELDS_AT_22 "      location.latitude: {mask: postcode_district}\n", /* 22 */
    22, 27, "rule 'r1': location.latitude: mask:postcode_district does not apply to every field under it"};

static const error_case_t initials_on_map = {
    FIELDS_AT_22 "      subjects: {mask: initials}\n", /* 22 */
    22, 18, "rule 'r1': subjects: mask:initials does not apply to every field under it"};

static const error_case_t pseudonymise_on_int = {
    FIELDS_AT_22 "      tension.level: pseudonymise\n", /* 22 */
    22, 22, "rule 'r1': tension.level: mask:pseudonymise does not apply to every field under it"};

static const error_case_t mask_on_star = {
    FIELDS_AT_22 "      \"*\": {mask: initials}\n", /* 22 */
    22, 13, "rule 'r1': *: a mask cannot apply to every field; name the fields"};

static const error_case_t pseudonymise_on_star = {
    FIELDS_AT_22 "      \"*\": pseudonymise\n", /* 22 */
    22, 12, "rule 'r1': *: a mask cannot apply to every field; name the fields"};

/*  The envelope goes whole with every delivery: a mask on it would be a
 *  promise no delivery keeps (it was accepted, and created went to the
 *  second under {mask: year}). */
static const error_case_t year_on_created = {
    FIELDS_AT_22 "      created: {mask: year}\n", /* 22 */
    22, 17,
    "rule 'r1': created: the envelope (id, originator, created, category, handling_level) goes "
    "whole with every delivered report; it cannot be masked"};

static const error_case_t pseudonymise_on_originator = {
    FIELDS_AT_22 "      originator: pseudonymise\n", /* 22 */
    22, 19,
    "rule 'r1': originator: the envelope (id, originator, created, category, handling_level) "
    "goes whole with every delivered report; it cannot be masked"};

/* ------------------------------------------------------------------------ */
/*  Screening.                                                              */

/*  Lines 17-20, match at 21. */
#define SCREEN_HEAD                                                                                \
    "screening:\n"               /* 17 */                                                          \
    "  - name: s1\n"             /* 18 */                                                          \
    "    feed: ctio\n"           /* 19 */                                                          \
    "    to_types: [police]\n"   /* 20 */

static const error_case_t match_unknown_key = {
    HEADER SCREEN_HEAD
    "    match:\n"               /* 21 */
    "      colour: red\n"        /* 22 */
    "    fields: {\"*\": share}\n", /* 23 */
    22, 7, "screening 's1': match: unknown key 'colour'"};

static const error_case_t match_nothing = {
    HEADER SCREEN_HEAD
    "    match: {keywords: []}\n"  /* 21 */
    "    fields: {\"*\": share}\n", /* 22 */
    21, 13, "screening 's1': match: matches nothing: give categories, indicators or keywords"};

static const error_case_t match_empty = {
    HEADER SCREEN_HEAD
    "    match: {}\n"               /* 21 */
    "    fields: {\"*\": share}\n", /* 22 */
    21, 0, "screening 's1': match: matches nothing: give categories, indicators or keywords"};

static const error_case_t match_unknown_category = {
    HEADER SCREEN_HEAD
    "    match: {categories: [gossip]}\n" /* 21 */
    "    fields: {\"*\": share}\n",       /* 22 */
    21, 26, "screening 's1': match: unknown category 'gossip'"};

static const error_case_t screening_without_match = {
    HEADER SCREEN_HEAD
    "    fields: {\"*\": share}\n", /* 21 */
    18, 5, "screening 's1': missing 'match'"};

static const error_case_t screening_without_feed = {
    HEADER
    "screening:\n"                     /* 17 */
    "  - name: s1\n"                   /* 18 */
    "    to_types: [police]\n"         /* 19 */
    "    match: {keywords: [knife]}\n" /* 20 */
    "    fields: {\"*\": share}\n",    /* 21 */
    18, 5, "screening 's1': missing 'feed'"};

static const error_case_t screening_rule_key = {
    HEADER SCREEN_HEAD
    "    categories: [vulnerable_individual]\n" /* 21 */
    "    match: {keywords: [knife]}\n"          /* 22 */
    "    fields: {\"*\": share}\n",             /* 23 */
    21, 5, "screening 's1': unknown key 'categories'"};

static const error_case_t screening_unknown_to_type = {
    HEADER
    "screening:\n"                     /* 17 */
    "  - name: s1\n"                   /* 18 */
    "    feed: ctio\n"                 /* 19 */
    "    to_types: [ctio]\n"           /* 20 */
    "    match: {keywords: [knife]}\n" /* 21 */
    "    fields: {\"*\": share}\n",    /* 22 */
    20, 16, "screening 's1': to_types: no agency has type 'ctio'"};

/* ------------------------------------------------------------------------ */
/*  Restrictions.                                                           */

/*  Lines 17-18, open for more keys at line 19. */
#define RESTRICTION_HEAD                                                                           \
    "restrictions:\n"                                   /* 17 */                                   \
    "  - name: x1\n"                                    /* 18 */

/*  A restriction only takes away: share would grant, so it is refused,
 *  naming the restriction. */
static const error_case_t restriction_share = {
    HEADER RESTRICTION_HEAD
    "    fields: {narrative: deny, summary: share}\n",  /* 19 */
    19, 40, "restriction 'x1': summary: share is not allowed in a restriction: it only "
            "denies or masks"};

static const error_case_t restriction_share_all = {
    HEADER RESTRICTION_HEAD
    "    fields:\n"                                     /* 19 */
    "      \"*\": share\n",                             /* 20 */
    20, 12, "restriction 'x1': *: share is not allowed in a restriction: it only denies or masks"};

static const error_case_t restriction_unknown_path = {
    HEADER RESTRICTION_HEAD
    "    fields: {subjects.nmae: deny}\n",              /* 19 */
    19, 14, "restriction 'x1': fields: unknown field path 'subjects.nmae'"};

static const error_case_t restriction_mask_misfit = {
    HEADER RESTRICTION_HEAD
    "    fields: {summary: {mask: year}}\n",            /* 19 */
    19, 24, "restriction 'x1': summary: mask:year does not apply to every field under it"};

static const error_case_t restriction_unknown_from_type = {
    HEADER RESTRICTION_HEAD
    "    from_types: [helth]\n"                         /* 19 */
    "    fields: {summary: deny}\n",                    /* 20 */
    19, 18, "restriction 'x1': from_types: no agency has type 'helth'"};

static const error_case_t restriction_unknown_to_type = {
    HEADER RESTRICTION_HEAD
    "    to_types: [council]\n"                         /* 19 */
    "    fields: {summary: deny}\n",                    /* 20 */
    19, 16, "restriction 'x1': to_types: no agency has type 'council'"};

static const error_case_t restriction_unknown_except_type = {
    HEADER RESTRICTION_HEAD
    "    except_to_types: [police, ctu]\n"              /* 19 */
    "    fields: {summary: deny}\n",                    /* 20 */
    19, 31, "restriction 'x1': except_to_types: no agency has type 'ctu'"};

static const error_case_t restriction_unknown_from_agency = {
    HEADER RESTRICTION_HEAD
    "    from_agencies: [hull-nhs]\n"                   /* 19 */
    "    fields: {summary: deny}\n",                    /* 20 */
    19, 21, "restriction 'x1': from_agencies: unknown agency 'hull-nhs'"};

static const error_case_t restriction_unknown_to_agency = {
    HEADER RESTRICTION_HEAD
    "    to_agencies: [hull-nhs]\n"                     /* 19 */
    "    fields: {summary: deny}\n",                    /* 20 */
    19, 19, "restriction 'x1': to_agencies: unknown agency 'hull-nhs'"};

static const error_case_t restriction_unknown_except_agency = {
    HEADER RESTRICTION_HEAD
    "    except_to_agencies: [hull-cc, hull-nhs]\n"     /* 19 */
    "    fields: {summary: deny}\n",                    /* 20 */
    19, 35, "restriction 'x1': except_to_agencies: unknown agency 'hull-nhs'"};

static const error_case_t restriction_unknown_category = {
    HEADER RESTRICTION_HEAD
    "    categories: [gossip]\n"                        /* 19 */
    "    fields: {summary: deny}\n",                    /* 20 */
    19, 18, "restriction 'x1': categories: unknown category 'gossip'"};

/*  categories: [] lists no category: a restriction that applied to none
 *  would load and promise nothing, silently. Leaving the key out means
 *  every category. */
static const error_case_t restriction_no_categories = {
    HEADER RESTRICTION_HEAD
    "    categories: []\n"                              /* 19 */
    "    fields: {summary: deny}\n",                    /* 20 */
    19, 0, "restriction 'x1': categories: at least one category is needed (leave categories "
           "out for every category)"};

static const error_case_t restriction_without_name = {
    HEADER
    "restrictions:\n"                                   /* 17 */
    "  - from_types: [police]\n"                        /* 18 */
    "    fields: {summary: deny}\n",                    /* 19 */
    18, 5, "restrictions[0]: missing 'name'"};

static const error_case_t restriction_empty_name = {
    HEADER
    "restrictions:\n"                                   /* 17 */
    "  - name: \"\"\n"                                  /* 18 */
    "    fields: {summary: deny}\n",                    /* 19 */
    18, 11, "restrictions[0]: name: '' is empty"};

static const error_case_t restriction_duplicate_name = {
    HEADER RESTRICTION_HEAD
    "    fields: {summary: deny}\n"                     /* 19 */
    "  - name: x1\n"                                    /* 20 */
    "    fields: {narrative: deny}\n",                  /* 21 */
    20, 11, "restriction 'x1': name: 'x1' is the name of another entry"};

/*  One namespace with rules and screening entries: "x1" in an explanation
 *  or a review names one thing. */
static const error_case_t restriction_named_as_rule = {
    HEADER RULE_HEAD
    "    fields: {summary: share}\n"                    /* 21 */
    "restrictions:\n"                                   /* 22 */
    "  - name: r1\n"                                    /* 23 */
    "    fields: {summary: deny}\n",                    /* 24 */
    23, 11, "restriction 'r1': name: 'r1' is the name of another entry"};

static const error_case_t restriction_without_fields = {
    HEADER RESTRICTION_HEAD
    "    from_types: [police]\n",                       /* 19 */
    18, 5, "restriction 'x1': missing 'fields'"};

static const error_case_t restriction_empty_fields = {
    HEADER RESTRICTION_HEAD
    "    fields: {}\n",                                 /* 19 */
    19, 0, "restriction 'x1': fields: a restriction must deny or mask at least one field"};

static const error_case_t restriction_unknown_key = {
    HEADER RESTRICTION_HEAD
    "    same_area: true\n"                             /* 19 */
    "    fields: {summary: deny}\n",                    /* 20 */
    19, 5, "restriction 'x1': unknown key 'same_area'"};

static const error_case_t restrictions_not_a_list = {
    HEADER
    "restrictions: {name: x1}\n",                       /* 17 */
    17, 16, "restrictions: expected a list"};

/* ------------------------------------------------------------------------ */
/*  Handling codes.                                                         */

static const error_case_t code_unknown_key = {
    HEADER
    "handling_codes:\n"                             /* 17 */
    "  \"1\": {to_types: [police], colour: red}\n", /* 18 */
    18, 29, "handling code '1': unknown key 'colour'"};

static const error_case_t code_unknown_type = {
    HEADER
    "handling_codes:\n"                  /* 17 */
    "  \"1\": {to_types: [health]}\n",   /* 18 */
    18, 20, "handling code '1': to_types: no agency has type 'health'"};

static const error_case_t code_unknown_agency = {
    HEADER
    "handling_codes:\n"                   /* 17 */
    "  \"1\": {to_agencies: [nobody]}\n", /* 18 */
    18, 23, "handling code '1': to_agencies: unknown agency 'nobody'"};

#define SAYS_NOTHING                                                                               \
    "says nothing: give to_types, to_agencies, same_organisation or originator_approval"

static const error_case_t code_says_nothing = {
    HEADER
    "handling_codes:\n"                       /* 17 */
    "  \"1\": {description: all partners}\n", /* 18 */
    18, 9, "handling code '1': " SAYS_NOTHING};

static const error_case_t code_says_false = {
    HEADER
    "handling_codes:\n"                                              /* 17 */
    "  \"4\": {same_organisation: false, originator_approval: false}\n", /* 18 */
    18, 9, "handling code '4': " SAYS_NOTHING};

static const error_case_t code_empty = {
    HEADER
    "handling_codes:\n" /* 17 */
    "  \"1\": {}\n",    /* 18 */
    18, 0, "handling code '1': " SAYS_NOTHING};

static const error_case_t code_bad_boolean = {
    HEADER
    "handling_codes:\n"                       /* 17 */
    "  \"4\": {same_organisation: yes}\n",    /* 18 */
    18, 28, "handling code '4': same_organisation: expected true or false, not 'yes'"};

/* ------------------------------------------------------------------------ */
/*  A good policy, and what loading it gives.                               */

static const char good_policy[] =
    "protocol: humber-prevent\n"
    "version: 7\n"
    "description: a test protocol\n"
    "levels: [OFFICIAL, OFFICIAL-SENSITIVE, SECRET]\n"
    "handling_codes:\n"
    "  \"1\": {to_types: [police, ctio]}\n"
    "  \"2\": {to_types: [police, ctio, local_authority]}\n"
    "  \"4\": {same_organisation: true}\n"
    "  \"5\": {originator_approval: true, description: ask first}\n"
    "agencies:\n"
    "  hull-police: {organisation: humberside-police, type: police, clearance: SECRET,\n"
    "                areas: [hull], key: \"" K1 "\"}\n"
    "  hull-ctio: {organisation: humberside-police, type: ctio, clearance: SECRET,\n"
    "              areas: [hull, \"*\"], key: \"" K2 "\", description: the CTIO}\n"
    "  hull-cc: {organisation: hull-city-council, type: local_authority,\n"
    "            clearance: OFFICIAL-SENSITIVE, areas: [hull], key: \"" K3 "\"}\n"
    "  ops: {organisation: broker-ops, type: admin, clearance: OFFICIAL, areas: [\"*\"],\n"
    "        key: \"" K4 "\"}\n"
    "administrators: [hull-police]\n"
    "rules:\n"
    "  - name: safeguarding-referral\n"
    "    description: police to council\n"
    "    categories: [vulnerable_individual]\n"
    "    from_types: [police]\n"
    "    to_types: [local_authority]\n"
    "    same_area: true\n"
    "    max_level: OFFICIAL-SENSITIVE\n"
    "    fields:\n"
    "      summary: share\n"
    "      subjects.name: {mask: initials}\n"
    "      subjects.date_of_birth: {mask: year}\n"
    "      subjects.postcode: {mask: postcode_district}\n"
    "      subjects.identifiers: pseudonymise\n"
    "      location.latitude: {mask: round_1km}\n"
    "      location.longitude: {mask: round_1km}\n"
    "      source: deny\n"
    "  - name: partner-referral\n"
    "    categories: [vulnerable_individual, radicalisation_concern]\n"
    "    from_agencies: [hull-cc]\n"
    "    to_agencies: [hull-police]\n"
    "    fields: {\"*\": share, source.notes: deny}\n"
    "screening:\n"
    "  - name: prevent-screen\n"
    "    feed: ctio\n"
    "    to_types: [ctio]\n"
    "    same_area: false\n"
    "    match:\n"
    "      categories: [community_tension]\n"
    "      indicators: [online_radicalisation]\n"
    "      keywords: [Radicalis, extremis]\n"
    "    fields: {\"*\": share}\n";

/* clang-format on */

static cv_policy_t *load(const char *yaml, size_t len)
{
    cv_error_t err = {0};
    cv_policy_t *policy = cv_policy_load_buffer(yaml, len, "good.yaml", NULL, &err);
    if (!policy)
        fail_msg("%s", err.msg);
    return policy;
}

/*  key: [current, next]: both find the agency, and nothing else does. */
static void test_an_agency_rotating_its_key_has_two(void **state)
{
    (void)state;
    char *text = strdup(good_policy);
    char *at = strstr(text, "key: \"" K3 "\"");
    assert_non_null(at);
    size_t len = strlen(text) + 64;
    char *rotating = malloc(len);
    snprintf(rotating, len, "%.*skey: [\"" K3 "\", \"" K5 "\"]%s", (int)(at - text), text,
             at + strlen("key: \"" K3 "\""));
    cv_policy_t *p = load(rotating, strlen(rotating));
    int cc = cv_policy_agency_find(p, "hull-cc");
    const cv_agency_t *agency = cv_policy_agency(p, cc);
    uint8_t current[32], next[32];
    assert_non_null(zmq_z85_decode(current, K3));
    assert_non_null(zmq_z85_decode(next, K5));
    assert_true(agency->has_next_key);
    assert_string_equal(agency->next_key_z85, K5);
    assert_int_equal(cv_policy_agency_by_key(p, current), cc);
    assert_int_equal(cv_policy_agency_by_key(p, next), cc);
    assert_true(cv_agency_has_key(agency, next));
    assert_false(cv_agency_has_key(cv_policy_agency(p, cv_policy_agency_find(p, "ops")), next));
    next[5] ^= 1;
    assert_int_equal(cv_policy_agency_by_key(p, next), -1);
    cv_policy_destroy(&p);
    free(rotating);
    free(text);
}

static void test_good_policy(void **state)
{
    (void)state;
    cv_policy_t *p = load(good_policy, strlen(good_policy));
    assert_string_equal(cv_policy_protocol(p), "humber-prevent");
    assert_int_equal(cv_policy_version(p), 7);
    assert_int_equal(cv_policy_level_count(p), 3);
    assert_string_equal(cv_policy_level_name(p, 0), "OFFICIAL");
    assert_string_equal(cv_policy_level_name(p, 2), "SECRET");
    assert_null(cv_policy_level_name(p, 3));
    assert_int_equal(cv_policy_level_find(p, "OFFICIAL-SENSITIVE"), 1);
    assert_int_equal(cv_policy_level_find(p, "official"), -1);
    assert_int_equal(cv_policy_level_find(p, NULL), -1);

    assert_int_equal(cv_policy_agency_count(p), 4);
    int cc = cv_policy_agency_find(p, "hull-cc");
    assert_true(cc >= 0);
    const cv_agency_t *agency = cv_policy_agency(p, cc);
    assert_string_equal(agency->id, "hull-cc");
    assert_string_equal(agency->organisation, "hull-city-council");
    assert_string_equal(agency->type, "local_authority");
    assert_int_equal(agency->clearance, 1);
    assert_int_equal(agency->n_areas, 1);
    assert_string_equal(agency->areas[0], "hull");
    assert_false(agency->all_areas);
    assert_false(agency->admin);
    assert_string_equal(agency->key_z85, K3);
    uint8_t key[32];
    assert_non_null(zmq_z85_decode(key, K3));
    assert_memory_equal(agency->key, key, 32);
    assert_int_equal(cv_policy_agency_by_key(p, key), cc);
    key[0] ^= 1;
    assert_int_equal(cv_policy_agency_by_key(p, key), -1);
    assert_int_equal(cv_policy_agency_find(p, "nobody"), -1);
    assert_int_equal(cv_policy_agency_find(p, NULL), -1);
    assert_null(cv_policy_agency(p, 4));
    assert_null(cv_policy_agency(p, -1));

    /* every agency is found by its id and by its key */
    for (int i = 0; i < cv_policy_agency_count(p); i++) {
        const cv_agency_t *a = cv_policy_agency(p, i);
        assert_int_equal(cv_policy_agency_find(p, a->id), i);
        assert_int_equal(cv_policy_agency_by_key(p, a->key), i);
    }
    /* "*" in areas means all areas */
    assert_true(cv_policy_agency(p, cv_policy_agency_find(p, "hull-ctio"))->all_areas);
    /* admin by type, and by the administrators list */
    assert_true(cv_policy_agency(p, cv_policy_agency_find(p, "ops"))->admin);
    assert_true(cv_policy_agency(p, cv_policy_agency_find(p, "hull-police"))->admin);
    assert_false(cv_policy_agency(p, cv_policy_agency_find(p, "hull-ctio"))->admin);
    cv_policy_destroy(&p);
    assert_null(p);
    cv_policy_destroy(&p); /* destroying NULL is harmless */
}

static bool is_lower_hex(const char *s)
{
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return false;
    return true;
}

static void test_hash(void **state)
{
    (void)state;
    cv_policy_t *p = load(good_policy, strlen(good_policy));
    const char *hash = cv_policy_hash(p);
    assert_int_equal(strlen(hash), 64);
    assert_true(is_lower_hex(hash));

    /* BLAKE2b-256 of exactly the bytes that were loaded */
    uint8_t digest[32];
    char hex[65];
    crypto_generichash(digest, sizeof digest, (const uint8_t *)good_policy, strlen(good_policy),
                       NULL, 0);
    sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
    assert_string_equal(hash, hex);

    /* the same bytes give the same hash; a comment changes it */
    cv_policy_t *again = load(good_policy, strlen(good_policy));
    assert_string_equal(cv_policy_hash(again), hash);
    char *changed = NULL;
    assert_true(asprintf(&changed, "# reviewed\n%s", good_policy) > 0);
    cv_policy_t *commented = load(changed, strlen(changed));
    assert_string_not_equal(cv_policy_hash(commented), hash);
    free(changed);
    cv_policy_destroy(&p);
    cv_policy_destroy(&again);
    cv_policy_destroy(&commented);
}

static void test_load_file(void **state)
{
    (void)state;
    char path[] = "/tmp/test_policy_load_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, good_policy, strlen(good_policy)), (ssize_t)strlen(good_policy));
    close(fd);
    cv_error_t err = {0};
    cv_policy_t *from_file = cv_policy_load_file(path, NULL, &err);
    cv_policy_t *from_buffer = load(good_policy, strlen(good_policy));
    assert_non_null(from_file);
    assert_string_equal(cv_policy_hash(from_file), cv_policy_hash(from_buffer));
    cv_policy_destroy(&from_file);
    cv_policy_destroy(&from_buffer);

    /* an error names the file it was in */
    FILE *file = fopen(path, "w");
    assert_non_null(file);
    fputs("protocol: p\nversion: x\n", file);
    fclose(file);
    assert_null(cv_policy_load_file(path, NULL, &err));
    char expected[200];
    snprintf(expected, sizeof expected, "%s:2:10: error: version: expected a whole number, not 'x'",
             path);
    assert_string_equal(err.msg, expected);
    unlink(path);

    assert_null(cv_policy_load_file("/nonexistent/policy.yaml", NULL, &err));
    assert_string_equal(err.msg,
                        "/nonexistent/policy.yaml: error: cannot open: No such file or directory");
}

/*  An empty document or one of only comments is refused, not loaded as an
 *  empty policy. */
static void test_empty_document(void **state)
{
    (void)state;
    static const char *const docs[] = {"", "\n", "# nothing here\n", "---\n"};
    for (size_t i = 0; i < sizeof docs / sizeof *docs; i++) {
        cv_error_t err = {0};
        assert_null(cv_policy_load_buffer(docs[i], strlen(docs[i]), "p.yaml", NULL, &err));
        assert_memory_equal(err.msg, "p.yaml", 6);
        assert_non_null(strstr(err.msg, "error: "));
    }
}

/*  Only the first error is reported, on one line. */
static void test_first_error_only(void **state)
{
    (void)state;
    /* clang-format off */
    static const char yaml[] = HEADER RULE_HEAD
        "    max_level: TOP\n"                  /* 21 */
        "    fields: {subjects.nmae: share}\n"; /* 22 */
    cv_error_t err = {0};
    /* clang-format on */
    assert_null(cv_policy_load_buffer(yaml, strlen(yaml), "p.yaml", NULL, &err));
    assert_string_equal(err.msg, "p.yaml:21:16: error: rule 'r1': max_level: unknown level 'TOP'");
    assert_null(strchr(err.msg, '\n'));
}

/*  The errors a load found, one per line. */
typedef struct {
    char text[16384];
    int count;
} error_lines_t;

static void collect_error(const char *error, void *arg)
{
    error_lines_t *lines = arg;
    size_t used = strlen(lines->text);
    snprintf(lines->text + used, sizeof lines->text - used, "%s\n", error);
    lines->count++;
}

/*  With an error sink, every error comes out: an entry with an error is
 *  skipped, the others are still checked, and an agency with an error
 *  still answers to its id (no second error where a rule names it). */
static void test_every_error(void **state)
{
    (void)state;
    /* clang-format off */
    static const char yaml[] = PREFIX POLICE
        "  hull-cc:\n"                              /* 11 */
        "    organisation: hull-city-council\n"     /* 12 */
        "    type: local_authority\n"               /* 13 */
        "    clearance: TOP\n"                      /* 14 */
        "    areas: [hull]\n"                       /* 15 */
        "    key: \"" K2 "\"\n"                      /* 16 */
        RULE_HEAD
        "    max_level: TOP\n"                      /* 21 */
        "    fields: {subjects.nmae: share, summary: blur}\n" /* 22 */
        "  - name: r2\n"                            /* 23 */
        "    categories: [vulnerable_individual]\n" /* 24 */
        "    to_agencies: [hull-cc]\n"              /* 25 */
        "    fields: {summary: share}\n"            /* 26 */
        "  - name: r3\n"                            /* 27 */
        "    categories: [gossip]\n"                /* 28 */
        "    to_types: [local_authority]\n"         /* 29 */
        "    fields: {summary: share}\n";           /* 30 */
    /* clang-format on */
    error_lines_t lines = {"", 0};
    cv_error_t err = {0};
    assert_null(cv_policy_load_buffer_each(yaml, strlen(yaml), "p.yaml", NULL, collect_error,
                                           &lines, &err));
    assert_string_equal(lines.text,
                        "p.yaml:14:16: error: agency 'hull-cc': clearance: unknown level 'TOP'\n"
                        "p.yaml:21:16: error: rule 'r1': max_level: unknown level 'TOP'\n"
                        "p.yaml:22:14: error: rule 'r1': fields: unknown field path "
                        "'subjects.nmae'\n"
                        "p.yaml:22:45: error: rule 'r1': summary: expected share, deny, "
                        "pseudonymise or {mask: NAME}, not 'blur'\n"
                        "p.yaml:28:18: error: rule 'r3': categories: unknown category 'gossip'\n");
    /* callers without a sink get the first */
    assert_string_equal(err.msg,
                        "p.yaml:14:16: error: agency 'hull-cc': clearance: unknown level 'TOP'");
}

/*  Past the 64th agency type the load goes on to list more errors: a rule
 *  naming a type beyond it is checked without a bit for it in its set (a
 *  shift by 64 or more, undefined behaviour, until it was guarded). */
static void test_too_many_types(void **state)
{
    (void)state;
    char *yaml = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&yaml, &size);
    assert_non_null(out);
    fputs("protocol: p\nversion: 1\nlevels: [A]\nagencies:\n", out);
    unsigned char key[32] = {0};
    char z85[41];
    for (int i = 0; i < 70; i++) {
        key[0] = (unsigned char)i;
        assert_non_null(zmq_z85_encode(z85, key, sizeof key));
        fprintf(out, "  a%d: {organisation: o, type: t%d, clearance: A, areas: [x], key: \"%s\"}\n",
                i, i, z85);
    }
    fputs("rules:\n  - name: r\n    categories: [feedback]\n    to_types: [t69]\n"
          "    fields: {summary: share}\n",
          out);
    fclose(out);
    error_lines_t lines = {"", 0};
    assert_null(
        cv_policy_load_buffer_each(yaml, size, "p.yaml", NULL, collect_error, &lines, NULL));
    assert_int_equal(lines.count, 6); /* agencies a64 to a69 */
    assert_non_null(strstr(lines.text, "agency 'a64': more than 64 agency types"));
    free(yaml);
}

/*  The list is bounded: CV_POLICY_ERRORS_MAX errors, then one line. */
static void test_too_many_errors(void **state)
{
    (void)state;
    char *yaml = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&yaml, &size);
    assert_non_null(out);
    fputs(HEADER "rules:\n", out);
    for (int i = 0; i < CV_POLICY_ERRORS_MAX + 20; i++)
        fprintf(out,
                "  - name: r%d\n    categories: [vulnerable_individual]\n"
                "    to_types: [local_authority]\n    fields: {nothing: share}\n",
                i);
    fclose(out);
    error_lines_t lines = {"", 0};
    assert_null(
        cv_policy_load_buffer_each(yaml, size, "p.yaml", NULL, collect_error, &lines, NULL));
    assert_int_equal(lines.count, CV_POLICY_ERRORS_MAX + 1);
    const char *last = strstr(lines.text, "p.yaml: error: too many errors");
    assert_non_null(last);
    assert_string_equal(last, "p.yaml: error: too many errors (more than 100); not listing the "
                              "rest\n");
    free(yaml);
}

/*  A policy may use YAML anchors and aliases to share field lists. */
static void test_aliases(void **state)
{
    (void)state;
    /* clang-format off */
    static const char yaml[] = HEADER
        "rules:\n"
        "  - name: r1\n"
        "    categories: [vulnerable_individual]\n"
        "    to_types: [local_authority]\n"
        "    fields: &referral {summary: share, subjects.name: {mask: initials}}\n"
        "  - name: r2\n"
        "    categories: [critical_incident]\n"
        "    to_types: [local_authority]\n"
        "    fields: *referral\n";
    /* clang-format on */
    cv_policy_t *p = load(yaml, strlen(yaml));
    cv_policy_destroy(&p);
}

/*  The error buffer may be NULL: the loader still refuses. */
static void test_null_error(void **state)
{
    (void)state;
    const char *yaml = unknown_top_key.yaml;
    assert_null(cv_policy_load_buffer(yaml, strlen(yaml), "p.yaml", NULL, NULL));
}

/* ------------------------------------------------------------------------ */

/*  Each case is its own test, named after it. */
static struct CMUnitTest error_test(const char *name, const error_case_t *c)
{
    return (struct CMUnitTest){name, check_error, NULL, NULL, (void *)c};
}

#define ERROR_CASE(name) error_test(#name, &name)

/*  Periods per category, the default for the others, none without. */
static void test_retention(void **state)
{
    (void)state;
    static const char text[] = HEADER "retention:\n"
                                      "  vulnerable_individual: 6y\n"
                                      "  feedback: 2w\n"
                                      "  default: 90d\n";
    cv_policy_t *p = load(text, strlen(text));
    int64_t seconds = 0;
    const char *rule = NULL;
    assert_true(cv_policy_retention(p, "vulnerable_individual", &seconds, &rule));
    assert_int_equal(seconds, 6 * 365 * 86400);
    assert_string_equal(rule, "retention.vulnerable_individual: 6y");
    assert_true(cv_policy_retention(p, "feedback", &seconds, &rule));
    assert_int_equal(seconds, 14 * 86400);
    assert_true(cv_policy_retention(p, "grievance", &seconds, &rule));
    assert_int_equal(seconds, 90 * 86400);
    assert_string_equal(rule, "retention.default: 90d");
    assert_true(cv_policy_retention(p, "a category since removed", &seconds, &rule));
    assert_int_equal(seconds, 90 * 86400);
    cv_policy_destroy(&p);

    static const char none[] = HEADER "retention:\n  feedback: 1y\n";
    p = load(none, strlen(none));
    assert_false(cv_policy_retention(p, "grievance", &seconds, &rule)); /* no default: kept */
    assert_true(cv_policy_retention(p, "feedback", &seconds, &rule));
    cv_policy_destroy(&p);
    p = load(HEADER, strlen(HEADER));
    assert_false(cv_policy_retention(p, "feedback", &seconds, &rule));
    cv_policy_destroy(&p);
}

/*  Levels are held in a byte: a policy with a 257th level is refused
 *  (it would wrap to the lowest, sharing a field marked with it with an
 *  agency cleared to the first level); 256 are taken. */
static void test_more_levels_than_a_byte_holds_are_refused(void **state)
{
    (void)state;
    for (int n = 256; n <= 257; n++) {
        char *text = NULL;
        size_t len = 0;
        FILE *out = open_memstream(&text, &len);
        fprintf(out, "protocol: p\nversion: 1\nlevels: [");
        for (int i = 0; i < n; i++)
            fprintf(out, "%sL%03d", i ? ", " : "", i);
        fprintf(out, "]\n");
        fclose(out);
        cv_error_t err = {0};
        cv_policy_t *policy = cv_policy_load_buffer(text, len, "p.yaml", NULL, &err);
        assert_null(policy); /* it has no agencies either */
        bool about_levels = strstr(err.msg, "levels: at most 256 levels, not 257") != NULL;
        assert_true(n == 257 ? about_levels && strncmp(err.msg, "p.yaml:3:", 9) == 0
                             : !about_levels);
        free(text);
    }
}

/*  A restriction's compiled form, as tools (diff, coverage) read it: its
 *  name and where it is, the deliveries it names, its grants. */
static void test_restrictions(void **state)
{
    (void)state;
    static const char text[] =
        HEADER RULE_HEAD "    fields: {summary: share}\n"                                   /* 21 */
                         "restrictions:\n"                                                  /* 22 */
                         "  - name: no-names\n"                                             /* 23 */
                         "    from_types: [police]\n"                                       /* 24 */
                         "    except_to_agencies: [hull-police]\n"                          /* 25 */
                         "    fields: {subjects.name: {mask: initials}, narrative: deny}\n" /* 26 */
                         "  - name: feedback-only\n"                                        /* 27 */
                         "    categories: [feedback]\n"                                     /* 28 */
                         "    to_types: [local_authority]\n"                                /* 29 */
                         "    fields: {\"*\": deny}\n";                                     /* 30 */
    cv_policy_t *p = load(text, strlen(text));
    assert_int_equal(p->n_restrictions, 2);
    const cv_restriction_t *r = &p->restrictions[0];
    assert_string_equal(r->name, "no-names");
    assert_int_equal(r->line, 23);
    assert_int_equal(r->column, 11);
    assert_int_equal(r->categories, (UINT64_C(1) << p->n_categories) - 1); /* every category */
    assert_true(r->from.types >> cv_policy_type_find(p, "police") & 1);
    assert_false(r->from.any);
    assert_true(r->to.any); /* every recipient */
    assert_false(r->except_to.any);
    assert_true(r->except_to.agencies[cv_policy_agency_find(p, "hull-police")]);
    assert_false(r->except_to.agencies[cv_policy_agency_find(p, "hull-cc")]);
    const cv_schema_t *schema = cv_schema_report();
    assert_int_equal(r->grants[cv_schema_find(schema, "subjects.name")], CV_GRANT_INITIALS);
    assert_int_equal(r->grants[cv_schema_find(schema, "narrative")], CV_GRANT_DENY);
    assert_int_equal(r->grants[cv_schema_find(schema, "summary")], CV_GRANT_NONE);
    r = &p->restrictions[1];
    assert_string_equal(r->name, "feedback-only");
    assert_int_equal(r->line, 27);
    assert_int_equal(r->categories, UINT64_C(1) << cv_policy_category_find(p, "feedback"));
    assert_true(r->from.any);
    assert_true(r->except_to.any); /* no exception */
    for (int i = 0; i < cv_schema_size(schema); i++)
        assert_int_equal(r->grants[i], CV_GRANT_DENY);
    /* the index: the first reaches the council, not the police it exempts */
    int out[2];
    int police = cv_policy_agency_find(p, "hull-police"), cc = cv_policy_agency_find(p, "hull-cc");
    int feedback = cv_policy_category_find(p, "feedback");
    assert_int_equal(cv_restrictions_for(p, feedback, police, cc, out), 2);
    assert_int_equal(out[0], 0);
    assert_int_equal(out[1], 1);
    assert_int_equal(cv_restrictions_for(p, feedback, cc, police, out), 0);
    assert_int_equal(cv_restrictions_for(p, 0, police, cc, out), 1);
    cv_policy_destroy(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_more_levels_than_a_byte_holds_are_refused),
        ERROR_CASE(syntax_sequence),
        ERROR_CASE(syntax_bracket),
        ERROR_CASE(duplicate_top_key),
        ERROR_CASE(duplicate_agency_id),
        ERROR_CASE(agency_id_with_override),
        ERROR_CASE(organisation_with_nul),
        ERROR_CASE(not_a_mapping),
        ERROR_CASE(unknown_top_key),
        ERROR_CASE(retention_unknown_category),
        ERROR_CASE(retention_bad_period),
        ERROR_CASE(retention_zero_period),
        ERROR_CASE(retention_no_unit),
        ERROR_CASE(missing_protocol),
        ERROR_CASE(missing_version),
        ERROR_CASE(missing_levels),
        ERROR_CASE(missing_agencies),
        ERROR_CASE(bad_version),
        ERROR_CASE(negative_version),
        ERROR_CASE(empty_levels),
        ERROR_CASE(level_twice),
        ERROR_CASE(empty_agencies),
        ERROR_CASE(own_categories),
        ERROR_CASE(unknown_administrator),
        ERROR_CASE(agency_unknown_key),
        ERROR_CASE(agency_missing_type),
        ERROR_CASE(agency_missing_key),
        ERROR_CASE(agency_unknown_clearance),
        ERROR_CASE(agency_no_areas),
        ERROR_CASE(agency_same_key),
        ERROR_CASE(next_key_same_as_another),
        ERROR_CASE(next_key_twice),
        ERROR_CASE(three_keys),
        ERROR_CASE(key_too_short),
        ERROR_CASE(key_too_long),
        ERROR_CASE(key_bad_character),
        ERROR_CASE(key_plain_bad_character),
        ERROR_CASE(rule_unknown_key),
        ERROR_CASE(rule_without_to),
        ERROR_CASE(rule_without_name),
        ERROR_CASE(rule_without_categories),
        ERROR_CASE(rule_without_fields),
        ERROR_CASE(rule_unknown_category),
        ERROR_CASE(rule_no_categories),
        ERROR_CASE(rule_unknown_to_type),
        ERROR_CASE(rule_unknown_from_type),
        ERROR_CASE(rule_unknown_to_agency),
        ERROR_CASE(rule_unknown_from_agency),
        ERROR_CASE(rule_unknown_max_level),
        ERROR_CASE(rule_bad_same_area),
        ERROR_CASE(duplicate_rule_name),
        ERROR_CASE(screening_named_as_rule),
        ERROR_CASE(empty_rule_name),
        ERROR_CASE(unknown_field_path),
        ERROR_CASE(unknown_grant),
        ERROR_CASE(unknown_mask),
        ERROR_CASE(mask_unknown_key),
        ERROR_CASE(mask_missing),
        ERROR_CASE(year_on_text),
        ERROR_CASE(round_on_string),
        ERROR_CASE(postcode_on_double),
        ERROR_CASE(initials_on_map),
        ERROR_CASE(pseudonymise_on_int),
        ERROR_CASE(mask_on_star),
        ERROR_CASE(pseudonymise_on_star),
        ERROR_CASE(year_on_created),
        ERROR_CASE(pseudonymise_on_originator),
        ERROR_CASE(match_unknown_key),
        ERROR_CASE(match_nothing),
        ERROR_CASE(match_empty),
        ERROR_CASE(match_unknown_category),
        ERROR_CASE(screening_without_match),
        ERROR_CASE(screening_without_feed),
        ERROR_CASE(screening_rule_key),
        ERROR_CASE(screening_unknown_to_type),
        ERROR_CASE(restriction_share),
        ERROR_CASE(restriction_share_all),
        ERROR_CASE(restriction_unknown_path),
        ERROR_CASE(restriction_mask_misfit),
        ERROR_CASE(restriction_unknown_from_type),
        ERROR_CASE(restriction_unknown_to_type),
        ERROR_CASE(restriction_unknown_except_type),
        ERROR_CASE(restriction_unknown_from_agency),
        ERROR_CASE(restriction_unknown_to_agency),
        ERROR_CASE(restriction_unknown_except_agency),
        ERROR_CASE(restriction_unknown_category),
        ERROR_CASE(restriction_no_categories),
        ERROR_CASE(restriction_without_name),
        ERROR_CASE(restriction_empty_name),
        ERROR_CASE(restriction_duplicate_name),
        ERROR_CASE(restriction_named_as_rule),
        ERROR_CASE(restriction_without_fields),
        ERROR_CASE(restriction_empty_fields),
        ERROR_CASE(restriction_unknown_key),
        ERROR_CASE(restrictions_not_a_list),
        ERROR_CASE(code_unknown_key),
        ERROR_CASE(code_unknown_type),
        ERROR_CASE(code_unknown_agency),
        ERROR_CASE(code_says_nothing),
        ERROR_CASE(code_says_false),
        ERROR_CASE(code_empty),
        ERROR_CASE(code_bad_boolean),
        cmocka_unit_test(test_good_policy),
        cmocka_unit_test(test_an_agency_rotating_its_key_has_two),
        cmocka_unit_test(test_hash),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_empty_document),
        cmocka_unit_test(test_first_error_only),
        cmocka_unit_test(test_every_error),
        cmocka_unit_test(test_too_many_errors),
        cmocka_unit_test(test_too_many_types),
        cmocka_unit_test(test_aliases),
        cmocka_unit_test(test_null_error),
        cmocka_unit_test(test_retention),
        cmocka_unit_test(test_restrictions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
