/*  fuzz_policy: the policy loader from bytes (cv_policy_load_buffer), and
 *  for each policy that loads, what the tools and the broker do with it:
 *  decide and explain three example reports for every agency, with and
 *  without an approval, draw it, diff it against itself, and look up
 *  retention. Checks that the packed view (cv_decision_pack, the broker's
 *  fast path) is exactly the built view packed, that every delivery goes
 *  to one of the report's routing candidates (cv_policy_candidates), that
 *  a recipient the decision says is given everything (cv_decision_shares_all)
 *  gets the report itself, and that a policy differs from itself in
 *  nothing. */
#include <stdlib.h>
#include <string.h>

#include "cv_policy.h"
#include "fuzz.h"

static const char *const report_files[] = {
    "examples/reports/vulnerable_individual.json",
    "examples/reports/community_tension.json",
    "examples/reports/prison_intelligence.json",
};
enum { N_REPORTS = sizeof report_files / sizeof *report_files };

static Caveat__Report *reports[N_REPORTS];

static void load_reports(void)
{
    for (int i = 0; i < N_REPORTS; i++) {
        size_t len;
        char *text = fuzz_source_file(report_files[i], &len);
        cv_error_t err;
        reports[i] =
            (Caveat__Report *)cv_json_parse(cv_schema_report(), text, len, report_files[i], &err);
        if (!reports[i])
            fuzz_fail("%s", err.msg);
        free(text);
    }
}

/*  Reads every string an explanation holds, so ASan sees a bad one. */
static size_t touch_explanation(const cv_decision_t *d)
{
    size_t total = cv_decision_feed(d) ? strlen(cv_decision_feed(d)) : 0;
    for (int i = 0; i < cv_decision_entry_count(d); i++)
        total += strlen(cv_decision_entry_name(d, i));
    /* the recipient is told no entry when none released the report (the
     * envelope alone, or not delivered) */
    if (cv_decision_told_count(d) > 0 && cv_decision_entry_count(d) == 0)
        fuzz_fail("told %d entries, none released", cv_decision_told_count(d));
    for (int i = 0; i < cv_decision_told_count(d); i++)
        total += strlen(cv_decision_told_name(d, i));
    for (int i = 0; i < cv_decision_reason_count(d); i++)
        total += strlen(cv_decision_reason(d, i));
    for (int i = 0; i < cv_decision_field_count(d); i++) {
        const cv_field_decision_t *f = cv_decision_field(d, i);
        total += strlen(f->path) + strlen(f->decision) + strlen(f->why);
    }
    return total;
}

/*  The view built and the view packed straight into a buffer agree; when
 *  the decision said it shares everything (asked first, as the audit
 *  record asks it), both are the report itself. */
static void check_view(cv_decision_t *d, const Caveat__Report *report, bool shares_all)
{
    Caveat__Report *view = cv_decision_view(d, report);
    if (!view)
        fuzz_fail("delivered, but no view");
    size_t len = caveat__report__get_packed_size(view);
    uint8_t *built = malloc(len + 1), *packed = malloc(len + 1);
    if (!built || !packed)
        abort();
    caveat__report__pack(view, built);
    size_t packed_len = cv_decision_pack(d, report, packed, len + 1);
    if (packed_len != len || memcmp(built, packed, len) != 0)
        fuzz_fail("cv_decision_pack wrote %zu bytes, the view packs to %zu (or differs)",
                  packed_len, len);
    if (shares_all) {
        uint8_t *whole = malloc(caveat__report__get_packed_size(report) + 1);
        if (!whole)
            abort();
        if (caveat__report__pack(report, whole) != len || memcmp(whole, built, len) != 0)
            fuzz_fail("report %s: shares all, but the view is not the report", report->id);
        free(whole);
    }
    char *json = cv_json_emit(&view->base, 0);
    if (!json)
        fuzz_fail("cv_json_emit failed on a view");
    free(json);
    free(built);
    free(packed);
    protobuf_c_message_free_unpacked(&view->base, NULL);
}

/*  The routing index's promise: a delivery goes to a candidate. */
static void check_candidate(const cv_policy_t *policy, const Caveat__Report *report, int agency,
                            const int *candidates, int n)
{
    for (int i = 0; i < n; i++)
        if (candidates[i] == agency)
            return;
    fuzz_fail("report %s delivered to %s, which is not among its %d candidates", report->id,
              cv_policy_agency(policy, agency)->id, n);
}

static void decide_all(const cv_policy_t *policy, cv_decision_t *d, cv_candidates_t *scratch)
{
    int n = cv_policy_agency_count(policy);
    for (int r = 0; r < N_REPORTS; r++) {
        cv_error_t err;
        cv_policy_validate_report(policy, reports[r], &err);
        const int *candidates;
        int n_candidates = cv_policy_candidates(policy, reports[r], scratch, &candidates);
        for (int a = 0; a < n; a++) {
            const char *to[] = {cv_policy_agency(policy, (a + 1) % n)->id};
            cv_approvals_t approvals = {to, 1};
            for (int with = 0; with < 2; with++) {
                if (cv_policy_decide(policy, reports[r], a, with ? &approvals : NULL, d)) {
                    check_candidate(policy, reports[r], a, candidates, n_candidates);
                    check_view(d, reports[r], cv_decision_shares_all(d));
                }
                touch_explanation(d);
            }
        }
    }
}

static void check_tools(const cv_policy_t *policy)
{
    char *graph = cv_policy_graph(policy);
    free(graph);
    char *diff = cv_policy_diff(policy, policy);
    if (diff && *diff)
        fuzz_fail("a policy differs from itself:\n%s", diff);
    free(diff);
    for (int r = 0; r < N_REPORTS; r++) {
        int64_t seconds;
        const char *rule;
        if (cv_policy_retention(policy, reports[r]->category, &seconds, &rule) &&
            (seconds <= 0 || !rule))
            fuzz_fail("retention of %lld seconds", (long long)seconds);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static cv_decision_t *decision;
    static cv_candidates_t *candidates;
    if (!decision) {
        load_reports();
        if (!(decision = cv_decision_new()) || !(candidates = cv_candidates_new()))
            abort();
    }
    cv_error_t err;
    cv_policy_t *policy = cv_policy_load_buffer((const char *)data, size, "fuzz.yaml", NULL, &err);
    if (!policy)
        return 0;
    decide_all(policy, decision, candidates);
    check_tools(policy);
    cv_policy_destroy(&policy);
    return 0;
}
