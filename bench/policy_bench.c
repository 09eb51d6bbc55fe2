/*  policy_bench.c: how fast the sharing-protocol engine is at the size of a
 *  large regional protocol. Not a test: it prints figures against targets
 *  and exits 0 whatever they are (timings belong here, never in ctest).
 *
 *  It generates, in memory, a policy of N agencies (real CURVE keys) and M
 *  rules plus a few screening entries, and a mix of ~1 KB reports, then
 *  measures: (1) cv_policy_load_buffer, (2) cv_policy_decide on one core,
 *  (3) decide + cv_decision_pack of delivered views (the view packed into
 *  a buffer, as the broker delivers), and (4) decide + the malloc'd
 *  cv_decision_view + protobuf_c_message_pack + free, for callers that
 *  keep views. Then the same policy with R restrictions added (a few broad,
 *  the rest scoped to a category or two and a few agencies, as a mature
 *  protocol has them) is measured again: restrictions must cost decisions
 *  and views less than 10 %. Last, (5) routing as the broker routes: per
 *  report, cv_policy_candidates then a decision for each candidate, against
 *  a decision for every agency: decisions per report, reports routed per
 *  second, and the size of the routing index.
 *
 *  Usage: policy_bench [--agencies N] [--rules N] [--restrictions R] [--seconds S]
 *                      [--only load|decide|view|copy|route]   (one phase, for a profiler)
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "bench_common.h"
#include "seeded_rng.h"
#include "policy_internal.h"

#define N_REPORTS      1000
#define MAX_VIEW_PAIRS 65536
#define PACK_BUFFER    (64 * 1024)

/* ------------------------------------------------------------------------ */
/*  Small utilities: a monotonic clock and the CPU clock. The PRNG is
 *  seeded_rng.h's: the same policy shape every run, only the keys differ. */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/*  CPU time of this (single-threaded) process: well below the wall time
 *  means the machine was busy and the rates are understated. */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------------------ */
/*  The vocabulary of the generated protocol.                               */

static const char *const levels[] = {"OFFICIAL", "OFFICIAL-SENSITIVE", "SECRET"};
#define N_LEVELS 3

static const char *const types[] = {
    "police", "special_branch",  "ctio",      "ctu",    "border_agency",
    "prison", "local_authority", "education", "health", "offender_management",
};
#define N_TYPES 10
/* how common each type is among agencies (percent, sums to 100) */
static const int type_weight[N_TYPES] = {14, 4, 4, 2, 3, 5, 22, 28, 12, 6};
/* clearance by type: police family SECRET, partners lower */
static const int type_clearance[N_TYPES] = {2, 2, 2, 2, 1, 1, 1, 0, 1, 1};

static const char *const categories[] = {
    "vulnerable_individual", "radicalisation_concern", "venue_of_concern",
    "community_tension",     "critical_incident",      "grievance",
    "intervention_review",   "prison_intelligence",    "feedback",
};
#define N_CATEGORIES 9

static const char *const areas[] = {
    "hull",         "beverley",  "goole",        "bridlington",     "grimsby",   "scunthorpe",
    "cleethorpes",  "driffield", "hornsea",      "withernsea",      "york",      "leeds",
    "bradford",     "wakefield", "sheffield",    "doncaster",       "rotherham", "barnsley",
    "huddersfield", "halifax",   "harrogate",    "scarborough",     "whitby",    "selby",
    "lincoln",      "brigg",     "gainsborough", "barton",          "immingham", "pocklington",
    "howden",       "hessle",    "cottingham",   "market-weighton", "thorne",    "epworth",
    "malton",       "pickering", "ripon",        "skipton",
};
#define N_AREAS 40

/*  Field grants a rule may carry: a path and the grants that fit it. */
static const struct {
    const char *path;
    const char *grants[3];
} field_menu[] = {
    {"summary", {"share"}},
    {"narrative", {"share", "deny"}},
    {"author", {"share", "{mask: initials}"}},
    {"area", {"share"}},
    {"priority", {"share"}},
    {"grading", {"share", "deny"}},
    {"subjects.name", {"share", "{mask: initials}", "pseudonymise"}},
    {"subjects.date_of_birth", {"share", "{mask: year}"}},
    {"subjects.address", {"share", "deny"}},
    {"subjects.postcode", {"share", "{mask: postcode_district}"}},
    {"subjects.identifiers", {"pseudonymise", "deny", "share"}},
    {"subjects.vulnerability_factors", {"share"}},
    {"location", {"share", "deny"}},
    {"location.latitude", {"{mask: round_1km}", "share"}},
    {"location.longitude", {"{mask: round_1km}", "share"}},
    {"location.postcode", {"{mask: postcode_district}"}},
    {"source", {"deny", "share"}},
    {"source.type", {"share"}},
    {"indicators", {"share"}},
    {"tension", {"share"}},
    {"caveats", {"share"}},
    {"field_markings", {"share"}},
};
#define N_FIELD_MENU (int)(sizeof field_menu / sizeof *field_menu)

static const char *const indicators[] = {
    "online_radicalisation",
    "extremist_literature",
    "travel_to_conflict",
    "weapons_interest",
    "isolation",
    "fixated_grievance",
    "hate_crime",
};
#define N_INDICATORS 7

typedef struct {
    int n_agencies, n_rules, n_restrictions;
    double seconds;
    const char *only; /* NULL: every phase */
    char (*ids)[32];  /* agency ids */
    uint64_t *areas;  /* per agency: a bit per areas[] entry; 0 for "*" */
} world_t;

/* ------------------------------------------------------------------------ */
/*  Policy generation.                                                      */

static int weighted_type(void)
{
    int r = rnd(100);
    for (int t = 0; t < N_TYPES; t++)
        if ((r -= type_weight[t]) < 0)
            return t;
    return 0;
}

/*  "[a, b, c]" of count distinct picks from a list of n names. */
/*  Writes count distinct names drawn from names; returns them as bits. */
static uint64_t add_picks(text_t *t, const char *const *names, int n, int count)
{
    uint64_t taken = 0;
    text_add(t, "[");
    for (int i = 0; i < count; i++) {
        int k;
        do
            k = rnd(n);
        while (taken >> k & 1);
        taken |= UINT64_C(1) << k;
        text_add(t, "%s%s", i ? ", " : "", names[k]);
    }
    text_add(t, "]");
    return taken;
}

static void add_agency_picks(text_t *t, const world_t *w, int count)
{
    text_add(t, "[");
    for (int i = 0; i < count; i++)
        text_add(t, "%s%s", i ? ", " : "", w->ids[rnd(w->n_agencies)]); /* repeats are rare */
    text_add(t, "]");
}

static void add_agency(text_t *t, world_t *w, int index)
{
    /* every type appears at least once, so every rule's types exist */
    int type = index < N_TYPES ? index : weighted_type();
    int n_orgs = w->n_agencies / 20 > 0 ? w->n_agencies / 20 : 1;
    char public_key[41], secret_key[41];
    if (zmq_curve_keypair(public_key, secret_key) != 0) {
        fprintf(stderr, "policy_bench: zmq_curve_keypair failed (libzmq without CURVE?)\n");
        exit(1);
    }
    snprintf(w->ids[index], sizeof w->ids[index], "%s-%04d", types[type], index);
    int clearance = type_clearance[type];
    if (clearance > 0 && chance(15))
        clearance--;
    text_add(t, "  %s: {organisation: org-%03d, type: %s, clearance: %s, areas: ", w->ids[index],
             rnd(n_orgs), types[type], levels[clearance]);
    w->areas[index] = 0;
    if (chance(5))
        text_add(t, "[\"*\"]");
    else
        w->areas[index] = add_picks(t, areas, N_AREAS, 1 + rnd(3));
    text_add(t, ", key: \"%s\"}\n", public_key);
}

static void add_header(text_t *t)
{
    text_add(t, "protocol: bench-protocol\nversion: 1\n"
                "description: generated by policy_bench\n"
                "levels: [OFFICIAL, OFFICIAL-SENSITIVE, SECRET]\n"
                "handling_codes:\n"
                "  \"1\": {to_types: [police, special_branch, ctio, ctu, border_agency]}\n"
                "  \"2\": {to_types: [police, special_branch, ctio, ctu, border_agency, prison,\n"
                "                   local_authority, education, health, offender_management]}\n"
                "  \"3\": {to_types: [police, special_branch, ctio, ctu]}\n"
                "  \"4\": {same_organisation: true}\n"
                "  \"5\": {originator_approval: true}\n");
}

static void add_fields(text_t *t)
{
    text_add(t, "fields: {");
    if (chance(20)) {
        /* everything but a few */
        text_add(t, "\"*\": share");
        if (chance(60))
            text_add(t, ", source: deny");
        if (chance(40))
            text_add(t, ", subjects.identifiers: pseudonymise");
        text_add(t, "}");
        return;
    }
    int order[N_FIELD_MENU];
    for (int i = 0; i < N_FIELD_MENU; i++)
        order[i] = i;
    int count = 3 + rnd(8);
    for (int i = 0; i < count; i++) {
        int j = i + rnd(N_FIELD_MENU - i), k = order[j];
        order[j] = order[i];
        order[i] = k;
        int n_grants = 0;
        while (n_grants < 3 && field_menu[k].grants[n_grants])
            n_grants++;
        text_add(t, "%s%s: %s", i ? ", " : "", field_menu[k].path,
                 field_menu[k].grants[rnd(n_grants)]);
    }
    text_add(t, "}");
}

static void add_rule(text_t *t, const world_t *w, int index)
{
    text_add(t, "  - {name: rule-%05d, categories: ", index);
    add_picks(t, categories, N_CATEGORIES, 1 + rnd(3));
    int from = rnd(100);
    if (from < 70) {
        text_add(t, ", from_types: ");
        add_picks(t, types, N_TYPES, 1 + rnd(3));
    }
    if (from >= 60 && from < 80) {
        text_add(t, ", from_agencies: ");
        add_agency_picks(t, w, 1 + rnd(4));
    }
    int to = rnd(100);
    if (to < 85) {
        text_add(t, ", to_types: ");
        add_picks(t, types, N_TYPES, 1 + rnd(2));
    }
    if (to >= 80) {
        text_add(t, ", to_agencies: ");
        add_agency_picks(t, w, 1 + rnd(5));
    }
    int area = rnd(100);
    if (area < 85)
        text_add(t, ", same_area: true");
    else if (area < 92)
        text_add(t, ", same_area: false");
    if (chance(70))
        text_add(t, ", max_level: %s", levels[rnd(N_LEVELS)]);
    text_add(t, ", ");
    add_fields(t);
    text_add(t, "}\n");
}

static void add_screening(text_t *t)
{
    text_add(
        t,
        "screening:\n"
        "  - {name: prevent-screen, feed: ctio, to_types: [ctio], same_area: true,\n"
        "     match: {categories: [community_tension, venue_of_concern, radicalisation_concern],\n"
        "             indicators: [extremist_literature, online_radicalisation, "
        "travel_to_conflict],\n"
        "             keywords: [radicalis, extremis]},\n"
        "     fields: {\"*\": share}}\n"
        "  - {name: ctu-screen, feed: ctu, to_types: [ctu],\n"
        "     match: {indicators: [travel_to_conflict, weapons_interest], keywords: [attack]},\n"
        "     fields: {\"*\": share, source.notes: deny}}\n"
        "  - {name: branch-screen, feed: special-branch, to_types: [special_branch],\n"
        "     same_area: true, match: {categories: [critical_incident, prison_intelligence]},\n"
        "     fields: {\"*\": share, subjects.identifiers: pseudonymise}}\n"
        "  - {name: border-screen, feed: border, to_types: [border_agency], max_level: "
        "OFFICIAL-SENSITIVE,\n"
        "     match: {indicators: [travel_to_conflict]},\n"
        "     fields: {summary: share, subjects.name: share, subjects.date_of_birth: share,\n"
        "              subjects.identifiers: pseudonymise}}\n");
}

static char *policy_text(world_t *w, size_t *len)
{
    text_t t = {0};
    add_header(&t);
    text_add(&t, "agencies:\n");
    for (int i = 0; i < w->n_agencies; i++)
        add_agency(&t, w, i);
    text_add(&t, "administrators: [%s]\n", w->ids[0]);
    text_add(&t, "rules:\n");
    for (int i = 0; i < w->n_rules; i++)
        add_rule(&t, w, i);
    add_screening(&t);
    *len = t.len;
    return t.data;
}

/*  Restrictions: three broad ones that apply to many deliveries (health
 *  identifiers, police sources, prison names), then narrow ones scoped to a
 *  category or two and to a few agencies or one pair of types, which apply
 *  to few. */
static const char *const restriction_fields[] = {
    "{subjects.identifiers: deny}",
    "{source: deny, grading: deny}",
    "{subjects.address: deny}",
    "{narrative: deny}",
    "{subjects.name: {mask: initials}}",
    "{location: deny}",
    "{subjects.date_of_birth: {mask: year}}",
    "{author: deny, caveats: deny}",
};
#define N_RESTRICTION_FIELDS (int)(sizeof restriction_fields / sizeof *restriction_fields)
#define N_BROAD_RESTRICTIONS 3

static void add_restriction(text_t *t, const world_t *w, int index)
{
    text_add(t, "  - {name: restriction-%04d, categories: ", index);
    add_picks(t, categories, N_CATEGORIES, 1 + rnd(2));
    int scope = rnd(100);
    if (scope < 50) {
        text_add(t, ", to_agencies: ");
        add_agency_picks(t, w, 1 + rnd(3));
    } else if (scope < 80) {
        text_add(t, ", from_agencies: ");
        add_agency_picks(t, w, 1 + rnd(3));
    } else {
        text_add(t, ", from_types: ");
        add_picks(t, types, N_TYPES, 1);
        text_add(t, ", to_types: ");
        add_picks(t, types, N_TYPES, 1);
    }
    text_add(t, ", fields: %s}\n", restriction_fields[rnd(N_RESTRICTION_FIELDS)]);
}

/*  The policy text base with n restrictions appended. */
static char *restricted_text(const char *base, const world_t *w, size_t *len)
{
    text_t t = {0};
    text_add(&t, "%s", base);
    text_add(&t, "restrictions:\n"
                 "  - {name: health-identifiers, from_types: [health],\n"
                 "     except_to_types: [health], fields: {subjects.identifiers: deny}}\n"
                 "  - {name: sources-stay-in-policing, from_types: [police, special_branch, "
                 "ctio, ctu],\n"
                 "     except_to_types: [police, special_branch, ctio, ctu],\n"
                 "     fields: {source: deny, grading: deny}}\n"
                 "  - {name: prison-names, categories: [prison_intelligence],\n"
                 "     to_types: [education, local_authority],\n"
                 "     fields: {subjects.name: {mask: initials}}}\n");
    for (int i = N_BROAD_RESTRICTIONS; i < w->n_restrictions; i++)
        add_restriction(&t, w, i);
    *len = t.len;
    return t.data;
}

/* ------------------------------------------------------------------------ */
/*  Reports: JSON text parsed once with cv_json_parse, before any timing.   */

static const char *const words[] = {
    "the subject",
    "was seen",
    "near the",
    "college",
    "mosque",
    "community centre",
    "on several occasions",
    "with associates",
    "and appeared",
    "withdrawn",
    "family members",
    "reported",
    "concerns",
    "about",
    "online activity",
    "including",
    "material",
    "shared in",
    "closed groups",
    "teachers noted",
    "a change in",
    "behaviour",
    "since the",
    "summer term",
    "officers spoke",
    "to the school",
    "safeguarding lead",
    "who agreed",
    "to refer",
};
#define N_WORDS (int)(sizeof words / sizeof *words)

static void add_narrative(text_t *t, int target)
{
    size_t start = t->len;
    if (chance(15))
        text_add(t, "Possible radicalisation: ");
    while ((int)(t->len - start) < target)
        text_add(t, "%s ", words[rnd(N_WORDS)]);
    text_add(t, "end of report.");
}

static void add_subject(text_t *t, int k)
{
    static const char *const first[] = {"Jane", "John", "Amir", "Sophie", "Tom", "Aisha"};
    static const char *const last[] = {"Doe", "Smith", "Khan", "Walker", "Hughes", "Patel"};
    text_add(
        t,
        "{\"name\": \"%s %s\", \"date_of_birth\": \"20%02d-%02d-%02d\", "
        "\"address\": \"%d Example Street, Hull\", \"postcode\": \"HU%d %d%c%c\", "
        "\"identifiers\": {\"pnc\": \"09/%06dA\", \"nhs\": \"%010d\"}, "
        "\"vulnerability_factors\": [\"isolation\", \"online contact\", \"school exclusion\"]}",
        first[rnd(6)], last[rnd(6)], rnd(12), 1 + rnd(12), 1 + rnd(28), 1 + k + rnd(200),
        1 + rnd(9), rnd(10), 'A' + rnd(26), 'A' + rnd(26), rnd(1000000), rnd(1000000000));
}

/*  An area the originator covers (the broker refuses any other). */
static const char *area_of(const world_t *w, int originator)
{
    uint64_t covered = w->areas[originator];
    int k;
    do
        k = rnd(N_AREAS);
    while (covered && !(covered >> k & 1));
    return areas[k];
}

static void add_report_body(text_t *t, const char *area)
{
    text_add(t, "\"priority\": \"%s\", \"area\": \"%s\", \"subjects\": [",
             chance(10) ? "IMMEDIATE" : "ROUTINE", area);
    add_subject(t, 0);
    text_add(t, ", ");
    add_subject(t, 1);
    text_add(t,
             "], \"location\": {\"name\": \"Community centre, Hessle Road\", "
             "\"address\": \"120 Hessle Road, Hull\", \"postcode\": \"HU3 2BQ\", "
             "\"latitude\": 53.7%04d, \"longitude\": -0.3%04d}, ",
             rnd(10000), rnd(10000));
    text_add(t, "\"summary\": \"Concern about a young person's contact with an older group\", "
                "\"narrative\": \"");
    add_narrative(t, 400);
    text_add(t,
             "\", \"source\": {\"type\": \"patrol\", \"reference\": \"SR/2026/%04d\", "
             "\"notes\": \"Met at the centre; reliable in the past\"}, \"indicators\": [",
             rnd(10000));
    for (int i = 0, n = rnd(3); i < n; i++)
        text_add(t, "%s\"%s\"", i ? ", " : "", indicators[rnd(N_INDICATORS)]);
    text_add(t, "], \"tension\": {\"level\": %d, \"trend\": \"rising\"}, ", 1 + rnd(5));
    if (chance(30))
        text_add(t, "\"field_markings\": [{\"path\": \"source\", \"level\": \"SECRET\"}], ");
    text_add(t, "\"caveats\": [\"POLICE ONLY\"]}");
}

static char *report_json(const world_t *w, int index)
{
    static const int level_weight[N_LEVELS] = {40, 45, 15};
    static const char *const codes = "1111222222222333444555"; /* drawn uniformly */
    int level = 0;
    for (int r = rnd(100); (r -= level_weight[level]) >= 0; level++)
        ;
    int originator = rnd(w->n_agencies);
    text_t t = {0};
    text_add(&t,
             "{\"id\": \"rep-%05d\", \"originator\": \"%s\", \"author\": \"PC %d Grant\", "
             "\"created\": \"2026-11-20T09:%02d:00Z\", \"category\": \"%s\", "
             "\"handling_level\": \"%s\", \"grading\": {\"source\": \"%c\", "
             "\"intelligence\": \"%d\", \"handling_code\": \"%c\"}, ",
             index, w->ids[originator], 1000 + rnd(9000), rnd(60), categories[rnd(N_CATEGORIES)],
             levels[level], 'A' + rnd(5), 1 + rnd(5), codes[rnd((int)strlen(codes))]);
    add_report_body(&t, area_of(w, originator));
    return t.data;
}

typedef struct {
    Caveat__Report *reports[N_REPORTS];
    cv_approvals_t approvals[N_REPORTS];
    size_t packed_total; /* of the originals */
} mix_t;

static const char *const approved_to[] = {"local_authority", "police"};

static void make_reports(mix_t *mix, const world_t *w, const cv_policy_t *policy)
{
    const cv_schema_t *schema = cv_schema_report();
    for (int i = 0; i < N_REPORTS; i++) {
        char *json = report_json(w, i);
        cv_error_t err;
        ProtobufCMessage *msg = cv_json_parse(schema, json, strlen(json), "<report>", &err);
        free(json);
        if (!msg || !cv_policy_validate_report(policy, (Caveat__Report *)msg, &err)) {
            fprintf(stderr, "policy_bench: generated report %d refused: %s\n", i, err.msg);
            exit(1);
        }
        mix->reports[i] = (Caveat__Report *)msg;
        mix->packed_total += protobuf_c_message_get_packed_size(msg);
        /* half the code-5 reports have been released to two types */
        if (chance(50))
            mix->approvals[i] = (cv_approvals_t){approved_to, 2};
    }
}

/* ------------------------------------------------------------------------ */
/*  Measurements.                                                           */

typedef struct {
    const cv_policy_t *policy;
    const mix_t *mix;
    cv_decision_t *decision;
    int n_agencies;
    /* phase 2: the running position in the (report, recipient) mix */
    int report, recipient;
    uint64_t delivered;
    /* phase 5: routing, with the index or deciding every agency */
    cv_candidates_t *candidates;
    uint64_t decisions;
    /* phase 3: delivered pairs, and what packing produced */
    int (*pairs)[2];
    int n_pairs, next_pair;
    uint8_t *buffer;
    uint64_t views, view_bytes, checksum;
} run_t;

typedef void (*work_fn)(run_t *run, uint64_t count);

/*  Recipients round-robin; each full sweep of the agencies moves the report
 *  offset by one, so over time every (report, recipient) pair comes up. */
static void advance(run_t *r)
{
    if (++r->report == N_REPORTS)
        r->report = 0;
    if (++r->recipient == r->n_agencies) {
        r->recipient = 0;
        if (++r->report == N_REPORTS)
            r->report = 0;
    }
}

static void decide_work(run_t *r, uint64_t count)
{
    for (uint64_t i = 0; i < count; i++) {
        r->delivered += cv_policy_decide(r->policy, r->mix->reports[r->report], r->recipient,
                                         &r->mix->approvals[r->report], r->decision);
        advance(r);
    }
}

static void count_view(run_t *r, size_t size)
{
    if (size <= PACK_BUFFER) {
        r->checksum += r->buffer[size / 2];
        r->views++;
        r->view_bytes += size;
    }
}

/*  The next delivered pair, decided; its report, or NULL if not delivered. */
static const Caveat__Report *decide_pair(run_t *r)
{
    const int *pair = r->pairs[r->next_pair];
    if (++r->next_pair == r->n_pairs)
        r->next_pair = 0;
    const Caveat__Report *report = r->mix->reports[pair[0]];
    return cv_policy_decide(r->policy, report, pair[1], &r->mix->approvals[pair[0]], r->decision)
               ? report
               : NULL;
}

/*  As the broker delivers: the view packed into a buffer. */
static void view_work(run_t *r, uint64_t count)
{
    for (uint64_t i = 0; i < count; i++) {
        const Caveat__Report *report = decide_pair(r);
        if (report)
            count_view(r, cv_decision_pack(r->decision, report, r->buffer, PACK_BUFFER));
    }
}

/*  As a caller that keeps views: malloc'd, packed, freed. */
static void copy_work(run_t *r, uint64_t count)
{
    for (uint64_t i = 0; i < count; i++) {
        const Caveat__Report *report = decide_pair(r);
        if (!report)
            continue;
        Caveat__Report *view = cv_decision_view(r->decision, report);
        size_t size = protobuf_c_message_get_packed_size(&view->base);
        if (size <= PACK_BUFFER)
            protobuf_c_message_pack(&view->base, r->buffer);
        count_view(r, size);
        protobuf_c_message_free_unpacked(&view->base, NULL);
    }
}

/*  Routes the next report as the broker does: decides its candidates. */
static void route_work(run_t *r, uint64_t count)
{
    for (uint64_t i = 0; i < count; i++) {
        const Caveat__Report *report = r->mix->reports[r->report];
        const int *agencies;
        int n = cv_policy_candidates(r->policy, report, r->candidates, &agencies);
        for (int k = 0; k < n; k++)
            r->delivered += cv_policy_decide(r->policy, report, agencies[k], NULL, r->decision);
        r->decisions += (uint64_t)n;
        r->report = (r->report + 1) % N_REPORTS;
    }
}

/*  Routes the next report deciding every agency, as the broker did. */
static void route_all_work(run_t *r, uint64_t count)
{
    for (uint64_t i = 0; i < count; i++) {
        const Caveat__Report *report = r->mix->reports[r->report];
        for (int a = 0; a < r->n_agencies; a++)
            r->delivered += cv_policy_decide(r->policy, report, a, NULL, r->decision);
        r->decisions += (uint64_t)r->n_agencies;
        r->report = (r->report + 1) % N_REPORTS;
    }
}

/*  Grows a trial count until it takes 50 ms, then runs the count that
 *  should take `seconds`. Returns the operations done and their time. */
static uint64_t timed(run_t *r, work_fn work, double seconds, double *elapsed, double *cpu)
{
    uint64_t first = work == route_all_work ? 10 : 1000; /* a report: every agency's decision */
    uint64_t trial = first;
    double t;
    for (;;) {
        double start = now();
        work(r, trial);
        t = now() - start;
        if (t >= 0.05)
            break;
        trial *= 4;
    }
    uint64_t count = (uint64_t)((double)trial * seconds / t);
    if (count < first)
        count = first;
    r->delivered = r->views = r->view_bytes = r->decisions = 0;
    double start = now(), cpu_start = cpu_now();
    work(r, count);
    *elapsed = now() - start;
    *cpu = cpu_now() - cpu_start;
    return count;
}

/*  Phase 3 runs only pairs that the policy delivers, so views/s is the cost
 *  of one full delivery, not diluted by cheap refusals. */
static void collect_pairs(run_t *r, double *mean_entries)
{
    r->pairs = calloc(MAX_VIEW_PAIRS, sizeof *r->pairs);
    if (!r->pairs)
        abort();
    uint64_t entries = 0;
    r->report = r->recipient = 0;
    for (long i = 0; i < (long)N_REPORTS * r->n_agencies && r->n_pairs < MAX_VIEW_PAIRS; i++) {
        if (cv_policy_decide(r->policy, r->mix->reports[r->report], r->recipient,
                             &r->mix->approvals[r->report], r->decision)) {
            entries += (uint64_t)cv_decision_entry_count(r->decision);
            r->pairs[r->n_pairs][0] = r->report;
            r->pairs[r->n_pairs++][1] = r->recipient;
        }
        advance(r);
    }
    *mean_entries = r->n_pairs ? (double)entries / r->n_pairs : 0;
}

/* ------------------------------------------------------------------------ */
/*  Output.                                                                 */

static void row(const char *metric, const char *figure, const char *target, const char *result)
{
    printf("%-34s %-18s %-12s %s\n", metric, figure, target, result);
}

static const char *verdict(bool pass)
{
    return pass ? "pass" : "FAIL";
}

/*  Candidate rules per (recipient, category): those of the recipient's type
 *  in every category, plus those that list it, once per category. */
static double mean_index(const cv_policy_t *p)
{
    long total = 0;
    for (int a = 0; a < p->n_agencies; a++) {
        const cv_agency_hot_t *agency = &p->agency_hot[a];
        total += p->type_rules[agency->type_id].buckets[cv_rule_bucket(p, p->n_categories, 0, 0)];
        for (int i = 0; i < agency->n_listed; i++)
            total += __builtin_popcountll(p->listed_pool[agency->listed_first + i].categories);
    }
    return (double)total / ((double)p->n_agencies * p->n_categories);
}

static void parse_args(world_t *w, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        bool value = i + 1 < argc;
        if (value && strcmp(argv[i], "--agencies") == 0)
            w->n_agencies = atoi(argv[++i]);
        else if (value && strcmp(argv[i], "--rules") == 0)
            w->n_rules = atoi(argv[++i]);
        else if (value && strcmp(argv[i], "--restrictions") == 0)
            w->n_restrictions = atoi(argv[++i]);
        else if (value && strcmp(argv[i], "--seconds") == 0)
            w->seconds = atof(argv[++i]);
        else if (value && strcmp(argv[i], "--only") == 0)
            w->only = argv[++i];
        else {
            fprintf(stderr, "usage: policy_bench [--agencies N] [--rules N] [--restrictions R] "
                            "[--seconds S] [--only load|decide|view|copy|route]\n");
            exit(2);
        }
    }
    if (w->only && strcmp(w->only, "load") != 0 && strcmp(w->only, "decide") != 0 &&
        strcmp(w->only, "view") != 0 && strcmp(w->only, "copy") != 0 &&
        strcmp(w->only, "route") != 0) {
        fprintf(stderr, "policy_bench: --only takes load, decide, view, copy or route\n");
        exit(2);
    }
    if (w->n_agencies < N_TYPES || w->n_rules < 1 || w->seconds <= 0 ||
        (w->n_restrictions > 0 && w->n_restrictions < N_BROAD_RESTRICTIONS)) {
        fprintf(stderr,
                "policy_bench: need --agencies >= %d, --rules >= 1, --seconds > 0, "
                "--restrictions 0 or >= %d\n",
                N_TYPES, N_BROAD_RESTRICTIONS);
        exit(2);
    }
}

/*  Loads `runs` times (1 or 3) and keeps the median time and the last
 *  policy. */
static cv_policy_t *load(const char *yaml, size_t len, int runs, double *seconds)
{
    double times[3];
    cv_policy_t *policy = NULL;
    for (int i = 0; i < runs; i++) {
        cv_policy_destroy(&policy);
        cv_error_t err;
        double start = now();
        policy = cv_policy_load_buffer(yaml, len, "<bench>", NULL, &err);
        times[i] = now() - start;
        if (!policy) {
            fprintf(stderr, "policy_bench: generated policy refused: %s\n", err.msg);
            exit(1);
        }
    }
    if (runs < 3) {
        *seconds = times[0];
        return policy;
    }
    double lo = times[0] < times[1] ? times[0] : times[1];
    double hi = times[0] < times[1] ? times[1] : times[0];
    *seconds = times[2] < lo ? lo : times[2] > hi ? hi : times[2];
    return policy;
}

static bool phase(const world_t *w, const char *name)
{
    return !w->only || strcmp(w->only, name) == 0;
}

/*  The measurements the phases produced. */
typedef struct {
    double seconds, cpu;
    uint64_t views, bytes;
} view_figures_t;

typedef struct {
    double load_s, decide_s, decide_cpu, mean_entries;
    uint64_t decisions, delivered;
    view_figures_t view, copy; /* cv_decision_pack, cv_decision_view (malloc'd) */
} figures_t;

static void measure_views(run_t *r, work_fn work, double seconds, view_figures_t *v)
{
    timed(r, work, seconds, &v->seconds, &v->cpu);
    v->views = r->views;
    v->bytes = r->view_bytes;
}

static void measure(world_t *w, run_t *r, figures_t *f)
{
    if (phase(w, "decide")) {
        f->decisions = timed(r, decide_work, w->seconds, &f->decide_s, &f->decide_cpu);
        f->delivered = r->delivered;
    }
    if (phase(w, "view") || phase(w, "copy"))
        collect_pairs(r, &f->mean_entries);
    if (r->n_pairs && phase(w, "view"))
        measure_views(r, view_work, w->seconds, &f->view);
    if (r->n_pairs && phase(w, "copy"))
        measure_views(r, copy_work, w->seconds, &f->copy);
}

static void print_context(const world_t *w, const run_t *r, const figures_t *f, size_t len)
{
    printf("policy_bench: %d agencies, %d rules + 4 screening entries, %d organisations, "
           "%d types; policy text %.1f KB\n",
           w->n_agencies, w->n_rules, r->policy->n_organisations, r->policy->n_types,
           (double)len / 1024.0);
    printf("index: %.1f rules per (recipient, category) on average", mean_index(r->policy));
    if (r->n_pairs)
        printf("; %.1f entries match a delivered pair", f->mean_entries);
    printf("\n");
    if (f->decisions)
        printf("decide: %llu decisions in %.2f s (CPU %.2f s)\n", (unsigned long long)f->decisions,
               f->decide_s, f->decide_cpu);
    if (f->view.views)
        printf("view: %llu packed views of %d delivered pairs in %.2f s (CPU %.2f s)\n",
               (unsigned long long)f->view.views, r->n_pairs, f->view.seconds, f->view.cpu);
    if (f->copy.views)
        printf("copy: %llu malloc'd views in %.2f s (CPU %.2f s)\n",
               (unsigned long long)f->copy.views, f->copy.seconds, f->copy.cpu);
    if (r->views)
        printf("checksum of packed views: %llu\n", (unsigned long long)r->checksum);
    printf("\n");
}

static void print_table(const world_t *w, const run_t *r, const figures_t *f)
{
    char figure[64];
    row("metric", "figure", "target", "result");
    if (phase(w, "load")) {
        snprintf(figure, sizeof figure, "%.3f s", f->load_s);
        row("policy load + validation", figure, "< 1 s", verdict(f->load_s < 1.0));
    }
    if (f->decisions) {
        double rate = (double)f->decisions / f->decide_s;
        snprintf(figure, sizeof figure, "%.0f/s", rate);
        row("decisions/s (one core)", figure, ">= 2000000", verdict(rate >= 2e6));
        snprintf(figure, sizeof figure, "%.1f %%",
                 100.0 * (double)f->delivered / (double)f->decisions);
        row("delivered (of decisions)", figure, "-", "-");
    }
    if (phase(w, "view")) {
        double views = f->view.views ? (double)f->view.views / f->view.seconds : 0;
        snprintf(figure, sizeof figure, "%.0f/s", views);
        row("views/s (decide+view+pack)", figure, ">= 200000", verdict(views >= 2e5));
    }
    if (phase(w, "copy")) {
        double views = f->copy.views ? (double)f->copy.views / f->copy.seconds : 0;
        snprintf(figure, sizeof figure, "%.0f/s", views);
        row("  with a malloc'd view (+free)", figure, "-", "-");
    }
    if (phase(w, "view") || phase(w, "copy")) {
        const view_figures_t *v = f->view.views ? &f->view : &f->copy;
        snprintf(figure, sizeof figure, "%.0f B", (double)r->mix->packed_total / N_REPORTS);
        row("mean packed report", figure, "~1 KB", "-");
        snprintf(figure, sizeof figure, "%.0f B",
                 v->views ? (double)v->bytes / (double)v->views : 0);
        row("mean packed view", figure, "-", "-");
    }
}

/*  One pass over the reports, routed by work: decisions and deliveries. */
static void route_pass(run_t *r, work_fn work, uint64_t *decisions, uint64_t *delivered)
{
    r->report = 0;
    r->decisions = r->delivered = 0;
    work(r, N_REPORTS);
    *decisions = r->decisions;
    *delivered = r->delivered;
}

/*  Phase 5: routing with the index against deciding every agency. */
static void measure_route(const world_t *w, run_t *r)
{
    uint64_t decisions, delivered, all_decisions, all_delivered;
    r->candidates = cv_candidates_new();
    route_pass(r, route_work, &decisions, &delivered);
    route_pass(r, route_all_work, &all_decisions, &all_delivered);
    double s, cpu, all_s, all_cpu;
    uint64_t routed = timed(r, route_work, w->seconds, &s, &cpu);
    uint64_t routed_all = timed(r, route_all_work, w->seconds, &all_s, &all_cpu);
    size_t bytes = cv_route_index_bytes(r->policy);
    char figure[64];
    printf("\nroute: per report, cv_policy_candidates and a decision for each candidate (the "
           "broker's route()), against a decision for every agency\n");
    printf("route: %llu reports in %.2f s (CPU %.2f s); every agency: %llu in %.2f s (CPU %.2f "
           "s)\n",
           (unsigned long long)routed, s, cpu, (unsigned long long)routed_all, all_s, all_cpu);
    row("metric", "figure", "target", "result");
    snprintf(figure, sizeof figure, "%.1f KB", (double)bytes / 1024.0);
    row("routing index", figure, "< 4 MB", verdict(bytes < 4u << 20));
    snprintf(figure, sizeof figure, "%.1f", (double)decisions / N_REPORTS);
    row("decisions/report, index", figure, "-", "-");
    snprintf(figure, sizeof figure, "%.1f", (double)all_decisions / N_REPORTS);
    row("decisions/report, every agency", figure, "-", "-");
    snprintf(figure, sizeof figure, "%.2f", (double)delivered / N_REPORTS);
    row("deliveries/report (both ways)", figure, "the same", verdict(delivered == all_delivered));
    snprintf(figure, sizeof figure, "%.0f/s", (double)routed / s);
    row("reports routed/s, index", figure, "-", "-");
    snprintf(figure, sizeof figure, "%.0f/s", (double)routed_all / all_s);
    row("reports routed/s, every agency", figure, "-", "-");
    cv_candidates_destroy(&r->candidates);
}

/*  The share of delivered pairs that some restriction applies to. */
static double restricted_share(const run_t *r)
{
    const cv_policy_t *p = r->policy;
    int *applying = calloc((size_t)p->n_restrictions + 1, sizeof *applying), hit = 0;
    if (!applying)
        abort();
    for (int i = 0; i < r->n_pairs; i++) {
        const Caveat__Report *report = r->mix->reports[r->pairs[i][0]];
        hit += cv_restrictions_for(p, cv_policy_category_find(p, report->category),
                                   cv_policy_agency_find(p, report->originator), r->pairs[i][1],
                                   applying) > 0;
    }
    free(applying);
    return r->n_pairs ? (double)hit / r->n_pairs : 0;
}

/*  A rate with restrictions against the rate without: within 10 %. Per
 *  CPU second, which a shared machine disturbs less than wall time (a
 *  process waiting for a core uses none), then per wall second. */
static void compare_row(const char *metric, uint64_t count, double cpu, double wall,
                        uint64_t count_without, double cpu_without, double wall_without)
{
    double with = (double)count / cpu, without = (double)count_without / cpu_without;
    char figure[64], target[64];
    snprintf(figure, sizeof figure, "%.0f/CPU s", with);
    snprintf(target, sizeof target, ">= %.0f", 0.9 * without);
    printf("%-34s %-18s %-18s %s (%+.1f %%; wall %.0f/s against %.0f/s)\n", metric, figure, target,
           verdict(with >= 0.9 * without), 100.0 * (with - without) / without, (double)count / wall,
           (double)count_without / wall_without);
}

/*  Decisions/s with and without restrictions measured in turns, ROUNDS
 *  each of seconds / ROUNDS, the best round of each compared: a machine
 *  whose speed drifts (a virtual one, a shared one) moves both alike. */
static void compare_decisions_interleaved(run_t *with, run_t *without, double seconds)
{
    enum { ROUNDS = 5 };
    double best_with = 0, best_without = 0;
    for (int i = 0; i < ROUNDS; i++) {
        double wall, cpu;
        uint64_t n = timed(without, decide_work, seconds / ROUNDS, &wall, &cpu);
        if (cpu > 0 && n / cpu > best_without)
            best_without = n / cpu;
        n = timed(with, decide_work, seconds / ROUNDS, &wall, &cpu);
        if (cpu > 0 && n / cpu > best_with)
            best_with = n / cpu;
    }
    char figure[64], target[64];
    snprintf(figure, sizeof figure, "%.0f/CPU s", best_with);
    snprintf(target, sizeof target, ">= %.0f", 0.9 * best_without);
    printf("%-34s %-18s %-18s %s (%+.1f %%; best of %d rounds each, in turns)\n",
           "decisions/s, interleaved", figure, target, verdict(best_with >= 0.9 * best_without),
           100.0 * (best_with - best_without) / best_without, ROUNDS);
}

/*  The same policy and reports with restrictions added, measured again. */
static void measure_restricted(world_t *w, const char *base, const mix_t *mix, uint8_t *buffer,
                               const figures_t *without, run_t *plain)
{
    size_t len;
    char *yaml = restricted_text(base, w, &len);
    figures_t f = {0};
    cv_policy_t *policy = load(yaml, len, phase(w, "load") ? 3 : 1, &f.load_s);
    run_t r = {.policy = policy,
               .mix = mix,
               .decision = cv_decision_new(),
               .n_agencies = w->n_agencies,
               .buffer = buffer};
    measure(w, &r, &f);
    printf("\nwith %d restrictions (%d broad; the rest scoped to a category or two and a few "
           "agencies or one pair of types), %d recipient groups",
           w->n_restrictions, N_BROAD_RESTRICTIONS, policy->n_restriction_groups);
    if (r.n_pairs)
        printf("; some restriction applies to %.1f %% of delivered pairs",
               100.0 * restricted_share(&r));
    printf("\n");
    row("metric", "figure", "target", "result");
    if (phase(w, "load")) {
        char figure[64];
        snprintf(figure, sizeof figure, "%.3f s", f.load_s);
        row("policy load + validation", figure, "< 1 s", verdict(f.load_s < 1.0));
    }
    if (f.decisions && without->decisions) {
        compare_row("decisions/s (one core)", f.decisions, f.decide_cpu, f.decide_s,
                    without->decisions, without->decide_cpu, without->decide_s);
        compare_decisions_interleaved(&r, plain, w->seconds);
    }
    if (f.view.views && without->view.views)
        compare_row("views/s (decide+view+pack)", f.view.views, f.view.cpu, f.view.seconds,
                    without->view.views, without->view.cpu, without->view.seconds);
    if (f.copy.views && without->copy.views)
        compare_row("  with a malloc'd view (+free)", f.copy.views, f.copy.cpu, f.copy.seconds,
                    without->copy.views, without->copy.cpu, without->copy.seconds);
    cv_decision_destroy(&r.decision);
    cv_policy_destroy(&policy);
    free(r.pairs);
    free(yaml);
}

int main(int argc, char **argv)
{
    world_t w = {.n_agencies = 2000, .n_rules = 5000, .n_restrictions = 200, .seconds = 2.0};
    parse_args(&w, argc, argv);
    double load_before = bench_load_average();
    w.ids = calloc((size_t)w.n_agencies, sizeof *w.ids);
    w.areas = calloc((size_t)w.n_agencies, sizeof *w.areas);
    mix_t *mix = calloc(1, sizeof *mix);
    uint8_t *buffer = malloc(PACK_BUFFER);
    if (!w.ids || !w.areas || !mix || !buffer)
        abort();

    size_t len;
    char *yaml = policy_text(&w, &len);
    figures_t f = {0};
    cv_policy_t *policy = load(yaml, len, phase(&w, "load") ? 3 : 1, &f.load_s);
    make_reports(mix, &w, policy);
    run_t r = {.policy = policy,
               .mix = mix,
               .decision = cv_decision_new(),
               .n_agencies = w.n_agencies,
               .buffer = buffer};
    measure(&w, &r, &f);
    print_context(&w, &r, &f, len);
    print_table(&w, &r, &f);
    if (phase(&w, "route"))
        measure_route(&w, &r);
    if (w.n_restrictions > 0 && !(w.only && strcmp(w.only, "route") == 0))
        measure_restricted(&w, yaml, mix, buffer, &f, &r);

    for (int i = 0; i < N_REPORTS; i++)
        protobuf_c_message_free_unpacked(&mix->reports[i]->base, NULL);
    cv_decision_destroy(&r.decision);
    cv_policy_destroy(&policy);
    free(r.pairs);
    free(buffer);
    free(mix);
    free(yaml);
    free(w.ids);
    free(w.areas);
    bench_print_load(load_before);
    return 0;
}
