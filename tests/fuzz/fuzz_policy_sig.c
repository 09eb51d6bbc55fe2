/*  fuzz_policy_sig: the .minisig reader and verifier (cv_sig_verify), on
 *  the signature of examples/policy.yaml by caveat-admin, and the signers
 *  file reader (cv_signers_parse), both on the same bytes: whoever can
 *  write the policy's directory writes the signature. Checks that every
 *  refusal has a reason, that only the listed signer verifies, and that a
 *  signers file that parses lists someone. */
#include <stdlib.h>
#include <string.h>

#include "cv_policy_sig.h"
#include "fuzz.h"

/*  caveat-admin's key (examples/keys), as `caveat policy signer-key`
 *  prints it. */
static const char signers_text[] =
    "caveat-admin RWQ/CUsoaSxvwOUYzezdGee+2A7td8rcLkK/FILnfT43YI1DPph+PB2c\n";

static char *policy;
static size_t policy_len;
static cv_signers_t *signers;

static void check_verify(const char *sig, size_t size)
{
    cv_signer_t by;
    cv_error_t err = {""};
    bool ok = cv_sig_verify(policy, policy_len, "policy.yaml", sig, size, signers, &by, &err);
    if (ok && strcmp(by.name, "caveat-admin") != 0)
        fuzz_fail("verified, signed by '%s'", by.name);
    if (!ok && !strstr(err.msg, "policy.yaml"))
        fuzz_fail("refused with no reason: '%s'", err.msg);
    if (!ok && by.name[0] && !by.key_id[0])
        fuzz_fail("a signer named without a key ID");
}

static void check_signers(const char *text, size_t size)
{
    cv_error_t err = {""};
    cv_signers_t *parsed = cv_signers_parse(text, size, "signers", &err);
    if (parsed && cv_signers_count(parsed) < 1)
        fuzz_fail("a signers file listing no one was accepted");
    if (!parsed && strncmp(err.msg, "signers", 7) != 0)
        fuzz_fail("signers refused with no reason: '%s'", err.msg);
    cv_signers_destroy(&parsed);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!policy) {
        policy = fuzz_source_file("examples/policy.yaml", &policy_len);
        cv_error_t err = {""};
        signers = cv_signers_parse(signers_text, strlen(signers_text), "signers", &err);
        if (!signers)
            fuzz_fail("%s", err.msg);
    }
    check_verify((const char *)data, size);
    check_signers((const char *)data, size);
    return 0;
}
