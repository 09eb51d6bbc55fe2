/*  test_policy_candidates.c: the routing index (policy/cv_candidates.c).
 *
 *  Its one promise: every agency that cv_policy_decide releases a report
 *  to is among cv_policy_candidates' agencies. Held differentially: policies
 *  generated at random from a fixed seed (types, organisations, areas,
 *  levels, categories, handling codes, rules, screening entries and
 *  restrictions of every shape the language has) and reports generated
 *  against them, some with unknown names, each decided for every agency
 *  with and without approvals. Then that the index is worth having: for a
 *  policy shaped like a real partnership's most reports have few
 *  candidates; and that it stays small at 2,000 agencies.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include <cmocka.h>

#include "cv_policy.h"
#include "policy_internal.h" /* cv_route_index_bytes */
#include "seeded_rng.h"

/* ------------------------------------------------------------------------ */
/*  A growable string (the PRNG is seeded_rng.h's).                         */

typedef struct {
    char *data;
    size_t len, cap;
} text_t;

__attribute__((format(printf, 2, 3))) static void text_add(text_t *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->data + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        assert_true(n >= 0);
        if (t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        t->cap = (t->cap + (size_t)n) * 2 + 256;
        t->data = realloc(t->data, t->cap);
        assert_non_null(t->data);
    }
}

/* ------------------------------------------------------------------------ */
/*  Generated policies.                                                     */

/*  The shape of one generated policy. */
typedef struct {
    int levels, categories, types, areas, orgs, agencies;
    int codes, rules, screens, restrictions;
    int same_area_percent;  /* of rules */
    int everywhere_percent; /* of agencies: areas ["*"] */
} shape_t;

static void add_key(text_t *t)
{
    uint8_t key[32];
    char z85[41];
    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t)rnd(256);
    assert_non_null(zmq_z85_encode(z85, key, sizeof key));
    text_add(t, "\"%s\"", z85);
}

/*  "[x1, x3]": 1 to max distinct picks of prefix0..prefix(n-1) (a name
 *  listed twice is an error). */
static void add_names(text_t *t, const char *prefix, int n, int max)
{
    int picked[8], count = 1 + rnd(max < n ? max : n);
    assert_true(count <= 8);
    text_add(t, "[");
    for (int i = 0; i < count; i++) {
        bool seen;
        do {
            picked[i] = rnd(n);
            seen = false;
            for (int j = 0; j < i; j++)
                seen = seen || picked[j] == picked[i];
        } while (seen);
        text_add(t, "%s%s%d", i ? ", " : "", prefix, picked[i]);
    }
    text_add(t, "]");
}

static void add_agencies(text_t *t, const shape_t *s)
{
    text_add(t, "agencies:\n");
    for (int a = 0; a < s->agencies; a++) {
        /* the first of each type first, so every type a rule names exists */
        int type = a < s->types ? a : rnd(s->types);
        text_add(t, "  a%d: {organisation: o%d, type: t%d, clearance: L%d, areas: ", a,
                 rnd(s->orgs), type, rnd(s->levels));
        if (chance(s->everywhere_percent))
            text_add(t, "[\"*\"]");
        else
            add_names(t, "r", s->areas, 3);
        text_add(t, ", key: ");
        add_key(t);
        text_add(t, "}\n");
    }
}

/*  from_* or to_* (or except_to_*): by type, by agency, both, or (when
 *  optional) neither. */
static void add_side(text_t *t, const shape_t *s, const char *side, bool optional)
{
    int how = rnd(optional ? 4 : 3);
    if (how == 0 || how == 2) {
        text_add(t, ", %s_types: ", side);
        add_names(t, "t", s->types, 2);
    }
    if (how == 1 || how == 2) {
        text_add(t, ", %s_agencies: ", side);
        add_names(t, "a", s->agencies, 3);
    }
}

static void add_codes(text_t *t, const shape_t *s)
{
    if (!s->codes)
        return;
    text_add(t, "handling_codes:\n");
    for (int c = 0; c < s->codes; c++) {
        text_add(t, "  \"%d\": {description: generated", c + 1);
        int how = 1 + rnd(15); /* a bit each: to_types, to_agencies, organisation, approval */
        if (how & 1) {
            text_add(t, ", to_types: ");
            add_names(t, "t", s->types, 2);
        }
        if (how & 2) {
            text_add(t, ", to_agencies: ");
            add_names(t, "a", s->agencies, 3);
        }
        if (how & 4)
            text_add(t, ", same_organisation: true");
        if (how & 8)
            text_add(t, ", originator_approval: true");
        text_add(t, "}\n");
    }
}

/*  Shares, masks, denies only (never delivers), or a notice. */
static void add_fields(text_t *t)
{
    static const char *const fields[] = {
        "{summary: share}",
        "{summary: deny}",
        "{}",
        "{\"*\": share, source: deny}",
        "{narrative: deny, summary: share}",
        "{subjects.name: {mask: initials}}",
        "{summary: deny, narrative: deny}",
    };
    text_add(t, ", fields: %s}\n", fields[rnd((int)(sizeof fields / sizeof *fields))]);
}

static void add_level_and_area(text_t *t, const shape_t *s, int same_area_percent)
{
    if (chance(same_area_percent))
        text_add(t, ", same_area: true");
    if (chance(40))
        text_add(t, ", max_level: L%d", rnd(s->levels));
}

static void add_rules(text_t *t, const shape_t *s)
{
    if (!s->rules)
        return;
    text_add(t, "rules:\n");
    for (int r = 0; r < s->rules; r++) {
        text_add(t, "  - {name: rule%d, categories: ", r);
        if (chance(15))
            text_add(t, "[\"*\"]");
        else
            add_names(t, "c", s->categories, 3);
        add_side(t, s, "from", true);
        add_side(t, s, "to", false);
        add_level_and_area(t, s, s->same_area_percent);
        add_fields(t);
    }
}

static void add_screening(text_t *t, const shape_t *s)
{
    if (!s->screens)
        return;
    text_add(t, "screening:\n");
    for (int e = 0; e < s->screens; e++) {
        text_add(t, "  - {name: screen%d, feed: f%d, match: {", e, rnd(2));
        int how = 1 + rnd(7); /* a bit each: categories, indicators, keywords */
        if (how & 1) {
            text_add(t, "categories: ");
            add_names(t, "c", s->categories, 2);
        }
        if (how & 2)
            text_add(t, "%sindicators: [i%d]", how & 1 ? ", " : "", rnd(3));
        if (how & 4)
            text_add(t, "%skeywords: [KW%d]", how & 3 ? ", " : "", rnd(3));
        text_add(t, "}");
        add_side(t, s, "from", true);
        add_side(t, s, "to", false);
        add_level_and_area(t, s, 50);
        add_fields(t);
    }
}

static void add_restrictions(text_t *t, const shape_t *s)
{
    if (!s->restrictions)
        return;
    text_add(t, "restrictions:\n");
    for (int r = 0; r < s->restrictions; r++) {
        text_add(t, "  - {name: restriction%d", r);
        if (chance(50)) {
            text_add(t, ", categories: ");
            add_names(t, "c", s->categories, 2);
        }
        add_side(t, s, "from", true);
        add_side(t, s, "to", true);
        if (chance(30))
            add_side(t, s, "except_to", true);
        text_add(t, ", fields: %s}\n", chance(50) ? "{summary: deny}" : "{\"*\": deny}");
    }
}

static char *policy_yaml(const shape_t *s)
{
    text_t t = {0};
    text_add(&t, "protocol: generated\nversion: 1\nlevels: ");
    for (int l = 0; l < s->levels; l++)
        text_add(&t, "%sL%d", l ? ", " : "[", l);
    text_add(&t, "]\ncategories: ");
    for (int c = 0; c < s->categories; c++)
        text_add(&t, "%sc%d", c ? ", " : "[", c);
    text_add(&t, "]\n");
    add_agencies(&t, s);
    add_codes(&t, s);
    add_rules(&t, s);
    add_screening(&t, s);
    add_restrictions(&t, s);
    return t.data;
}

static cv_policy_t *generate(const shape_t *s)
{
    char *yaml = policy_yaml(s);
    cv_error_t err = {0};
    cv_policy_t *policy = cv_policy_load_buffer(yaml, strlen(yaml), "generated.yaml", NULL, &err);
    if (!policy)
        fail_msg("generated policy refused: %s\n%s", err.msg, yaml);
    free(yaml);
    return policy;
}

/*  A random shape, small enough to decide every (report, agency). */
static shape_t random_shape(void)
{
    return (shape_t){.levels = 1 + rnd(4),
                     .categories = 1 + rnd(6),
                     .types = 1 + rnd(6),
                     .areas = 1 + rnd(5),
                     .orgs = 1 + rnd(4),
                     .agencies = 8 + rnd(30),
                     .codes = chance(50) ? 0 : 1 + rnd(4),
                     .rules = rnd(14),
                     .screens = rnd(4),
                     .restrictions = rnd(4),
                     .same_area_percent = 50,
                     .everywhere_percent = 10};
}

/* ------------------------------------------------------------------------ */
/*  Generated reports.                                                      */

/*  Mostly names the policy knows; now and then one it does not. */
static void add_name(text_t *t, const char *key, const char *prefix, int n, const char *unknown)
{
    if (chance(5))
        text_add(t, ", \"%s\": \"%s\"", key, unknown);
    else
        text_add(t, ", \"%s\": \"%s%d\"", key, prefix, rnd(n));
}

static Caveat__Report *report_for(const shape_t *s, int index)
{
    text_t t = {0};
    text_add(&t, "{\"id\": \"rep-%d\"", index);
    add_name(&t, "originator", "a", s->agencies, "nobody");
    add_name(&t, "category", "c", s->categories, "unknown_category");
    add_name(&t, "handling_level", "L", s->levels, "TOP");
    if (!chance(10))
        add_name(&t, "area", "r", s->areas, "atlantis");
    if (!chance(10))
        text_add(&t, ", \"grading\": {\"handling_code\": \"%d\"}", 1 + rnd(s->codes + 1));
    text_add(&t, ", \"summary\": \"%s\", \"narrative\": \"seen near the station\"",
             chance(30) ? "mentions kw1 and more" : "plain words");
    if (chance(40))
        text_add(&t, ", \"indicators\": [\"i%d\"]", rnd(3));
    if (chance(20))
        text_add(&t, ", \"field_markings\": [{\"path\": \"summary\", \"level\": \"L%d\"}]",
                 rnd(s->levels));
    text_add(&t, "}");
    cv_error_t err = {0};
    ProtobufCMessage *msg = cv_json_parse(cv_schema_report(), t.data, t.len, "report.json", &err);
    if (!msg)
        fail_msg("generated report refused: %s\n%s", err.msg, t.data);
    free(t.data);
    return (Caveat__Report *)msg;
}

/* ------------------------------------------------------------------------ */
/*  Checks.                                                                 */

/*  Ascending, each once, within the policy: a bitmap of them in is. */
static void check_list(const cv_policy_t *policy, const int *agencies, int n, uint8_t *is)
{
    memset(is, 0, (size_t)cv_policy_agency_count(policy));
    for (int i = 0; i < n; i++) {
        assert_in_range(agencies[i], 0, cv_policy_agency_count(policy) - 1);
        if (i > 0)
            assert_true(agencies[i - 1] < agencies[i]);
        is[agencies[i]] = 1;
    }
}

/*  Every delivery, with approvals or without, goes to a candidate.
 *  Returns the deliveries. */
static int check_superset(const cv_policy_t *policy, const Caveat__Report *report,
                          cv_candidates_t *candidates, cv_decision_t *decision)
{
    const int *agencies;
    int n = cv_policy_candidates(policy, report, candidates, &agencies), delivered = 0;
    int total = cv_policy_agency_count(policy);
    uint8_t *is = malloc((size_t)total + 1);
    assert_non_null(is);
    check_list(policy, agencies, n, is);
    for (int a = 0; a < total; a++) {
        const cv_agency_t *agency = cv_policy_agency(policy, a);
        const char *to[] = {agency->id, agency->type};
        cv_approvals_t approvals = {to, 2};
        for (int with = 0; with < 2; with++) {
            if (!cv_policy_decide(policy, report, a, with ? &approvals : NULL, decision))
                continue;
            delivered++;
            if (!is[a])
                fail_msg("report %s goes to %s (%s), which is not a candidate", report->id,
                         agency->id, cv_decision_entry_name(decision, 0));
        }
    }
    free(is);
    return delivered;
}

static void test_superset_of_deliveries(void **state)
{
    (void)state;
    cv_candidates_t *candidates = cv_candidates_new();
    cv_decision_t *decision = cv_decision_new();
    long deliveries = 0, reports = 0;
    for (int p = 0; p < 400; p++) {
        rng_state = 0x9E3779B97F4A7C15u + (uint64_t)p; /* policy p is the same every run */
        shape_t shape = random_shape();
        cv_policy_t *policy = generate(&shape);
        for (int r = 0; r < 40; r++, reports++) {
            Caveat__Report *report = report_for(&shape, r);
            deliveries += check_superset(policy, report, candidates, decision);
            protobuf_c_message_free_unpacked(&report->base, NULL);
        }
        cv_policy_destroy(&policy);
    }
    /* the generator exercised deliveries, not only refusals */
    assert_true(deliveries > reports);
    cv_decision_destroy(&decision);
    cv_candidates_destroy(&candidates);
}

/* ------------------------------------------------------------------------ */
/*  A hand-written policy: each thing that keeps an agency out.             */

#define KEY(n) "\"" n "\""
/* clang-format off */
static const char small_yaml[] =
    "protocol: small\n"
    "version: 1\n"
    "levels: [OFFICIAL, SECRET]\n"
    "agencies:\n"
    "  hull-police: {organisation: hp, type: police, clearance: SECRET, areas: [hull],"
    " key: " KEY("kY8[f}w2}*bW5UFN>7fbWOR$QBz=n<qa*v:t*tLN") "}\n"
    "  hull-cc: {organisation: hcc, type: council, clearance: OFFICIAL, areas: [hull],"
    " key: " KEY("XSEn)f@J2=]&MH9eu{9=<ITtalLpr[tWw7}B2APp") "}\n"
    "  york-cc: {organisation: ycc, type: council, clearance: OFFICIAL, areas: [york],"
    " key: " KEY("CLfC.xK:.*ZR&AbkJ*pG:Ebz/ngx4P>9I!8PrmR>") "}\n"
    "  ctu: {organisation: ctu, type: ctu, clearance: SECRET, areas: [\"*\"],"
    " key: " KEY("6PtBJ>RC})VCt&o)&*ZTVgivQwNGu*WDw*8}u>[j") "}\n"
    "  school: {organisation: hcc, type: school, clearance: OFFICIAL, areas: [hull],"
    " key: " KEY("8jL!$TBw!lL[FF+[=Rje(UkLrS*]6:LYo64>ZMff") "}\n"
    "handling_codes:\n"
    "  \"1\": {to_types: [police, council, ctu, school]}\n"
    "  \"2\": {to_types: [ctu]}\n"
    "  \"4\": {same_organisation: true}\n"
    "rules:\n"
    "  - {name: to-councils, categories: [vulnerable_individual], from_types: [police],\n"
    "     to_types: [council], same_area: true, fields: {summary: share}}\n"
    "  - {name: to-ctu, categories: [vulnerable_individual], to_agencies: [ctu],\n"
    "     max_level: OFFICIAL, fields: {summary: share}}\n"
    "  - {name: schools-see-nothing, categories: [vulnerable_individual],\n"
    "     to_types: [school], fields: {summary: deny}}\n"
    "restrictions:\n"
    "  - {name: no-summary, to_types: [council], fields: {summary: deny}}\n";
/* clang-format on */

static Caveat__Report *small_report(const char *originator, const char *category, const char *level,
                                    const char *code)
{
    char json[512];
    snprintf(json, sizeof json,
             "{\"id\": \"r\", \"originator\": \"%s\", \"category\": \"%s\", "
             "\"handling_level\": \"%s\", \"area\": \"hull\", "
             "\"grading\": {\"handling_code\": \"%s\"}, \"summary\": \"s\"}",
             originator, category, level, code);
    cv_error_t err = {0};
    ProtobufCMessage *msg = cv_json_parse(cv_schema_report(), json, strlen(json), "r.json", &err);
    if (!msg)
        fail_msg("%s", err.msg);
    return (Caveat__Report *)msg;
}

/*  The candidates' ids, space-separated, in index order. */
static const char *candidates_of(const cv_policy_t *policy, cv_candidates_t *candidates,
                                 const char *originator, const char *category, const char *level,
                                 const char *code)
{
    static char ids[256];
    Caveat__Report *report = small_report(originator, category, level, code);
    const int *agencies;
    int n = cv_policy_candidates(policy, report, candidates, &agencies);
    ids[0] = '\0';
    for (int i = 0; i < n; i++)
        snprintf(ids + strlen(ids), sizeof ids - strlen(ids), "%s%s", i ? " " : "",
                 cv_policy_agency(policy, agencies[i])->id);
    protobuf_c_message_free_unpacked(&report->base, NULL);
    return ids;
}

static void test_what_keeps_an_agency_out(void **state)
{
    (void)state;
    cv_error_t err = {0};
    cv_policy_t *policy =
        cv_policy_load_buffer(small_yaml, strlen(small_yaml), "small.yaml", NULL, &err);
    if (!policy)
        fail_msg("%s", err.msg);
    cv_candidates_t *c = cv_candidates_new();
    /* york-cc is in another area; school's rule only denies; a restriction
     * removing hull-cc's only field does not add or remove a candidate */
    assert_string_equal(
        candidates_of(policy, c, "hull-police", "vulnerable_individual", "OFFICIAL", "1"),
        "hull-cc ctu");
    /* the level: ctu's rule stops at OFFICIAL, hull-cc is not cleared */
    assert_string_equal(
        candidates_of(policy, c, "hull-police", "vulnerable_individual", "SECRET", "1"), "");
    /* the handling code's types, and same organisation */
    assert_string_equal(
        candidates_of(policy, c, "hull-police", "vulnerable_individual", "OFFICIAL", "2"), "ctu");
    assert_string_equal(
        candidates_of(policy, c, "hull-police", "vulnerable_individual", "OFFICIAL", "4"), "");
    /* the originator by type, and never itself */
    assert_string_equal(
        candidates_of(policy, c, "hull-cc", "vulnerable_individual", "OFFICIAL", "1"), "ctu");
    assert_string_equal(candidates_of(policy, c, "ctu", "vulnerable_individual", "OFFICIAL", "1"),
                        "");
    /* the category */
    assert_string_equal(candidates_of(policy, c, "hull-police", "grievance", "OFFICIAL", "1"), "");
    /* names deciding refuses for everyone: no candidates */
    assert_string_equal(
        candidates_of(policy, c, "nobody", "vulnerable_individual", "OFFICIAL", "1"), "");
    assert_string_equal(candidates_of(policy, c, "hull-police", "nothing", "OFFICIAL", "1"), "");
    assert_string_equal(
        candidates_of(policy, c, "hull-police", "vulnerable_individual", "TOP", "1"), "");
    assert_string_equal(
        candidates_of(policy, c, "hull-police", "vulnerable_individual", "OFFICIAL", "9"), "");
    cv_candidates_destroy(&c);
    cv_policy_destroy(&policy);
}

/* ------------------------------------------------------------------------ */
/*  Worth having, and small.                                                */

/*  A partnership's shape: 400 agencies over 40 areas, most rules within
 *  an area, a few agencies serving everywhere. */
static const shape_t partnership = {.levels = 3,
                                    .categories = 9,
                                    .types = 10,
                                    .areas = 40,
                                    .orgs = 60,
                                    .agencies = 400,
                                    .codes = 0, /* they narrow; here the rules alone do */
                                    .rules = 120,
                                    .screens = 4,
                                    .restrictions = 10,
                                    .same_area_percent = 90,
                                    .everywhere_percent = 3};

static void test_few_candidates_in_a_partnership(void **state)
{
    (void)state;
    rng_state = 0x5DEECE66Du;
    cv_policy_t *policy = generate(&partnership);
    cv_candidates_t *candidates = cv_candidates_new();
    cv_decision_t *decision = cv_decision_new();
    int few = 0, reports = 200;
    long total = 0, delivered = 0;
    for (int r = 0; r < reports; r++) {
        Caveat__Report *report = report_for(&partnership, r);
        const int *agencies;
        int n = cv_policy_candidates(policy, report, candidates, &agencies);
        delivered += check_superset(policy, report, candidates, decision);
        few += n < partnership.agencies / 4;
        total += n;
        protobuf_c_message_free_unpacked(&report->base, NULL);
    }
    printf("partnership of %d agencies: %.1f candidates and %.1f deliveries per report on "
           "average, %d of %d reports with under a quarter of the agencies as candidates\n",
           partnership.agencies, (double)total / reports, (double)delivered / 2 / reports, few,
           reports);
    assert_true(few >= reports * 8 / 10);
    assert_true(delivered > 2 * reports); /* not few because nothing goes anywhere */
    cv_decision_destroy(&decision);
    cv_candidates_destroy(&candidates);
    cv_policy_destroy(&policy);
}

static void test_index_stays_small(void **state)
{
    (void)state;
    rng_state = 0xC0FFEEu;
    shape_t national = partnership;
    national.agencies = 2000;
    national.categories = 10;
    national.areas = 200;
    national.rules = 600;
    national.codes = 5;
    cv_policy_t *policy = generate(&national);
    size_t bytes = cv_route_index_bytes(policy);
    printf("routing index for %d agencies x %d categories: %zu bytes\n", national.agencies,
           national.categories, bytes);
    assert_true(bytes > 0);
    assert_true(bytes < 1024 * 1024);
    cv_policy_destroy(&policy);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_superset_of_deliveries),
        cmocka_unit_test(test_what_keeps_an_agency_out),
        cmocka_unit_test(test_few_candidates_in_a_partnership),
        cmocka_unit_test(test_index_stays_small),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
