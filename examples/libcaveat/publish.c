/*  publish.c: one report to caveatd through libcaveat (README.md).
 *  usage: publish ENDPOINT BROKER.cert AGENCY.cert_secret AREA SUMMARY */
#include <caveat.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: publish ENDPOINT BROKER.cert AGENCY.cert_secret AREA SUMMARY\n");
        return 2;
    }
    cv_client_config_t config = {
        .endpoint = argv[1], .server_cert = argv[2], .client_cert = argv[3], .publish_only = true};
    cv_error_t err;
    cv_client_t *client = cv_client_new(&config, &err);
    if (!client) {
        fprintf(stderr, "publish: %s (%s)\n", err.msg, cv_code_name(err.code));
        return 1;
    }
    Caveat__Grading grading = CAVEAT__GRADING__INIT;
    grading.handling_code = "2";                  /* law enforcement and statutory partners */
    Caveat__Report report = CAVEAT__REPORT__INIT; /* libcaveat only reads it */
    report.grading = &grading;
    report.originator = (char *)cv_client_agency(client);
    report.category = "feedback";
    report.handling_level = "OFFICIAL";
    report.area = argv[4];
    report.summary = argv[5];
    cv_publish_result_t result;
    int refused = cv_client_publish_one(client, &report, &result, 5000, &err);
    if (refused < 0) /* not acknowledged: publish again with id = result.report_id */
        fprintf(stderr, "publish: %s (%s)\n", err.msg, cv_code_name(err.code));
    else if (refused > 0)
        fprintf(stderr, "publish: %s: %s\n", cv_status_name(result.status), result.reason);
    else
        printf("%s\n", result.report_id);
    cv_publish_results_clear(&result, 1);
    cv_client_destroy(&client);
    return refused == 0 ? 0 : 1;
}
