/*  fuzz_policy_cases: the `caveat policy test` cases reader and runner
 *  (cv_cases_run) on bytes, against the example policy. The cases file is
 *  named as if it were examples/CASES.yaml, so reports/NAME.json names an
 *  example report; those are read once, from memory, and no other path a
 *  case names reaches the disk (/dev/zero would be a hang, not a bug). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_policy.h"
#include "fuzz.h"
#include "policy_cases.h"

#define CASES_FILE CAVEAT_SOURCE_DIR "/examples/CASES.yaml"
#define REPORTS    CAVEAT_SOURCE_DIR "/examples/reports/"

static const char *const report_names[] = {
    "community_tension.json",
    "critical_incident.json",
    "feedback.json",
    "grievance.json",
    "intervention_review.json",
    "prison_intelligence.json",
    "radicalisation_concern.json",
    "venue_of_concern.json",
    "vulnerable_individual.json",
};
enum { N_REPORTS = sizeof report_names / sizeof *report_names };

static struct {
    char *text;
    size_t len;
} reports[N_REPORTS];

static void load_reports(void)
{
    for (int i = 0; i < N_REPORTS; i++) {
        char relative[200];
        snprintf(relative, sizeof relative, "examples/reports/%s", report_names[i]);
        reports[i].text = fuzz_source_file(relative, &reports[i].len);
    }
}

/*  A copy of an example report, or NULL (ENOENT) for any other path. */
static char *read_example(const char *path, size_t *len)
{
    size_t prefix = strlen(REPORTS);
    for (int i = 0; strncmp(path, REPORTS, prefix) == 0 && i < N_REPORTS; i++)
        if (strcmp(path + prefix, report_names[i]) == 0) {
            char *copy = malloc(reports[i].len + 1);
            if (!copy)
                abort();
            memcpy(copy, reports[i].text, reports[i].len + 1);
            *len = reports[i].len;
            return copy;
        }
    errno = ENOENT;
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static cv_policy_t *policy;
    static cv_cases_options_t options;
    if (!policy) {
        size_t len;
        char *text = fuzz_source_file("examples/policy.yaml", &len);
        cv_error_t err;
        policy = cv_policy_load_buffer(text, len, "examples/policy.yaml", NULL, &err);
        if (!policy)
            fuzz_fail("%s", err.msg);
        free(text);
        load_reports();
        FILE *null = fopen("/dev/null", "w");
        if (!null)
            fuzz_fail("/dev/null: %s", strerror(errno));
        options = (cv_cases_options_t){
            .out = null, .err = null, .verbose = true, .read_file = read_example};
    }
    cv_cases_run(policy, (const char *)data, size, CASES_FILE, &options);
    return 0;
}
