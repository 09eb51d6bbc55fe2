/*  test_signed_policy.c: caveatd --policy-signers, end to end. The real
 *  caveatd loads only a policy its administrator signed, at start and at
 *  every reload; an unsigned, altered or foreign-signed policy is refused,
 *  logged with the reason, and the last good policy keeps routing.
 *  (A refused start is tests/cli_policy_sign.sh: it needs the exit code.)
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <czmq.h>
#include <sodium.h>

#include "cv_cert.h"
#include "cv_policy_sig.h"
#include "e2e_checks.h"
#include "harness.h"

/*  The signing key of an example agency's certificate in the harness. */
static void key_of(harness_t *h, const char *agency, cv_sign_key_t *key)
{
    char name[128];
    snprintf(name, sizeof name, "%s.cert_secret", agency);
    uint8_t public_key[CV_KEY_BYTES], secret_key[CV_KEY_BYTES];
    cv_error_t err = {0};
    assert_true(cv_cert_load(harness_path(h, name), public_key, secret_key, &err));
    assert_true(cv_sign_key_derive(secret_key, key));
    sodium_memzero(secret_key, sizeof secret_key);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/*  DIR/policy.yaml.minisig: text signed by agency's key. */
static void write_signature(harness_t *h, const char *text, const char *agency)
{
    cv_sign_key_t key;
    key_of(h, agency, &key);
    char *sig = cv_sig_sign(text, strlen(text), &key, "file:policy.yaml");
    cv_sign_key_wipe(&key);
    assert_non_null(sig);
    write_text(harness_path(h, "policy.yaml.minisig"), sig);
    free(sig);
}

/*  A harness whose policy caveat-admin signed and whose signers file
 *  lists caveat-admin only, with caveatd started on them. */
static harness_t *started_signed(void)
{
    harness_t *h = harness_new();
    assert_non_null(h);
    char *policy = read_text(harness_path(h, "policy.yaml"));
    write_signature(h, policy, "caveat-admin");
    free(policy);
    cv_sign_key_t key;
    key_of(h, "caveat-admin", &key);
    char key_text[CV_SIG_KEY_TEXT], line[256];
    cv_sign_key_text(&key, key_text);
    cv_sign_key_wipe(&key);
    snprintf(line, sizeof line, "# who may sign the sharing policy\ncaveat-admin %s\n", key_text);
    write_text(harness_path(h, "signers"), line);
    char signers[600];
    snprintf(signers, sizeof signers, "%s", harness_path(h, "signers"));
    const char *extra[] = {"--policy-signers", signers, NULL};
    assert_true(harness_start(h, extra));
    return h;
}

static bool log_has(harness_t *h, const char *text)
{
    char *log = read_text(harness_path(h, "broker.log"));
    bool found = strstr(log, text) != NULL;
    if (!found)
        print_error("broker.log has no '%s':\n%s", text, log);
    free(log);
    return found;
}

/*  hum-bcu-hull publishes a referral; true when hull-cc receives it. */
static bool council_receives_a_referral(harness_t *h)
{
    cv_client_t *council = client(h, "hull-cc", NULL, 0);
    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    Caveat__Report *report = harness_report("vulnerable_individual");
    assert_non_null(report);
    cv_publish_result_t result = {0};
    cv_error_t err = {0};
    int published = cv_client_publish_one(police, report, &result, 5000, &err);
    if (published != 0)
        print_error("publish: code %d: %s\n", (int)err.code, err.msg);
    assert_int_equal(published, 0);
    cv_publish_results_clear(&result, 1);
    caveat__report__free_unpacked(report, NULL);
    const cv_delivery_t *d = cv_client_receive(council, 3000, &err);
    bool received = d != NULL;
    if (d)
        assert_true(cv_client_ack(council, d->seq, &err));
    cv_client_destroy(&police);
    cv_client_destroy(&council);
    return received;
}

/*  The example policy without hull-cc: loaded, it would stop the
 *  referrals to the council (and revoke its key). */
static char *without_council(harness_t *h)
{
    char *policy = read_text(harness_path(h, "policy.yaml"));
    char *start = strstr(policy, "\n  hull-cc:\n");
    assert_non_null(start);
    char *end = start + strlen("\n  hull-cc:\n");
    while (strncmp(end, "    ", 4) == 0)
        end = strchr(end, '\n') + 1;
    memmove(start + 1, end, strlen(end) + 1);
    return policy;
}

/*  Asks for a reload; returns the reply (free it), and whether it was
 *  done in *ok. */
static char *reload(harness_t *h, bool *ok)
{
    char *text = admin(h, "reload", ok);
    assert_non_null(text);
    return text;
}

/* ------------------------------------------------------------------------ */

static void test_signed_policy_loads_and_routes(void **state)
{
    (void)state;
    harness_t *h = started_signed();
    assert_true(log_has(h, "policy signed by caveat-admin (key ID "));
    assert_true(council_receives_a_referral(h));
    finish(&h);
}

/*  Unsigned, altered, signed by a key not listed: each refused with its
 *  reason, by the admin command and by SIGHUP alike; the old policy
 *  routes on. Then the same change, signed, is taken. */
static void test_unsigned_altered_and_foreign_reloads_are_refused(void **state)
{
    (void)state;
    harness_t *h = started_signed();
    char *good = read_text(harness_path(h, "policy.yaml"));
    char *reduced = without_council(h);
    struct {
        const char *signer; /* NULL: no signature file */
        const char *signed_text;
        const char *reason;
    } cases[] = {
        {NULL, NULL,
         "policy.yaml.minisig: cannot open: No such file or directory), and with "
         "signers configured only a signed policy loads"},
        {"caveat-admin", good, ": error: the signature by caveat-admin (key ID "},
        {"hull-cc", reduced, ": error: signed by key ID "},
    };
    int failures = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unlink(harness_path(h, "policy.yaml.minisig"));
        if (cases[i].signer)
            write_signature(h, cases[i].signed_text, cases[i].signer);
        harness_write_policy(h, reduced);
        bool ok = true;
        char *text = reload(h, &ok);
        assert_false(ok);
        if (!strstr(text, cases[i].reason))
            print_error("case %zu: reload said: %s\n", i, text);
        assert_non_null(strstr(text, cases[i].reason));
        free(text);
        harness_signal(h, SIGHUP);
        failures += 2;
        for (int tries = 0; tries < 50 && stat_of(h, "reload_failures") < failures; tries++)
            usleep(20 * 1000);
        assert_int_equal(stat_of(h, "reload_failures"), failures);
        assert_true(log_has(h, "reload refused, the old policy stays: "));
        assert_true(log_has(h, cases[i].reason));
        assert_true(council_receives_a_referral(h)); /* the old policy */
    }
    assert_true(log_has(h, "which is not a trusted signer"));
    assert_true(log_has(h, "does not match: the file was changed after it was signed"));

    write_signature(h, reduced, "caveat-admin"); /* the same change, signed */
    bool ok = false;
    char *text = reload(h, &ok);
    if (!ok)
        print_error("reload: %s\n", text);
    assert_true(ok);
    free(text);
    cv_error_t err = {0};
    cv_client_t *council = harness_client(h, "hull-cc", NULL, 0, &err);
    assert_null(council); /* no longer in the policy in force */
    free(good);
    free(reduced);
    finish(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signed_policy_loads_and_routes),
        cmocka_unit_test(test_unsigned_altered_and_foreign_reloads_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
