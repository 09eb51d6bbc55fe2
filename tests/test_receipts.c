/*  Receipts end to end, through libcaveat against the real caveatd: each
 *  acknowledged delivery of a session that asked gets one receipt, whose
 *  leaf names that delivery (agency, seq, report) and the SHA-256 of the
 *  view it received, and whose proof checks with the broker's verifier
 *  key; an agency gets receipts for its own deliveries only; a session
 *  that did not ask gets none; and a delivery acknowledged after a restart
 *  before it was sent again is named with the view it was first sent as
 *  (views are deterministic). The command line's side is cli_receipts.sh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <sodium.h>

#include "cv_audit.h"
#include "e2e_checks.h"
#include "harness.h"

#define N                                    12 /* reports published */
#define CV_RECORD_DELIVERIES_PER_LEAF_TESTED 16 /* cv_record.h's bound, as documented */

typedef struct {
    char id[129];  /* a report id is at most 128 bytes */
    char view[65]; /* hex SHA-256 */
    int receipts;
} seen_t;

static cv_client_t *subscriber(harness_t *h, const char *agency, bool receipts)
{
    cv_error_t err = {0};
    cv_client_config_t config = {.credit = 100, .timeout_ms = 3000, .receipts = receipts};
    cv_client_t *c = harness_client_with(h, agency, config, &err);
    if (!c)
        print_error("client %s: %s\n", agency, err.msg);
    assert_non_null(c);
    return c;
}

/*  Receives n deliveries (seqs 1..n), keeping each view's hash,
 *  acknowledging each as it comes or, when not ack_each, leaving that to
 *  the caller. */
static void receive_views(cv_client_t *c, seen_t *seen, int n, bool ack_each)
{
    for (int i = 0; i < n; i++) {
        const cv_delivery_t *d = receive(c, 5000);
        assert_non_null(d);
        assert_int_equal(d->seq, i + 1);
        uint8_t hash[32];
        assert_true(cv_client_view_hash(d, hash));
        snprintf(seen[i].id, sizeof seen[i].id, "%s", d->report_id);
        sodium_bin2hex(seen[i].view, sizeof seen[i].view, hash, sizeof hash);
        assert_true(!ack_each || cv_client_ack(c, d->seq, &(cv_error_t){0}));
    }
}

static void receive_all(cv_client_t *c, seen_t *seen, int n)
{
    receive_views(c, seen, n, true);
}

static cv_note_verifier_t broker_verifier(harness_t *h)
{
    cv_error_t err = {0};
    cv_note_signer_t *signer = cv_note_signer_load(harness_path(h, "data/audit.key"), &err);
    assert_non_null(signer);
    cv_note_verifier_t verifier = *cv_note_signer_verifier(signer);
    cv_note_signer_destroy(&signer);
    return verifier;
}

static bool leaf_has(const cv_receipt_t *r, const char *text)
{
    return memmem(r->leaf, r->leaf_len, text, strlen(text)) != NULL;
}

/*  One receipt checked: its proof, with the verifier; its leaf, against
 *  what agency was delivered. */
static void check_receipt(const cv_receipt_t *r, const cv_note_verifier_t *verifier,
                          const char *agency, seen_t *seen, int n)
{
    cv_audit_proof_t proof;
    cv_error_t err = {0};
    char text[256];
    assert_true(r->seq >= 1 && r->seq <= (uint64_t)n);
    seen_t *s = &seen[r->seq - 1];
    s->receipts++;
    assert_string_equal(r->report_id, s->id);
    assert_true(cv_audit_proof_parse(r->proof, r->proof_len, &proof, &err));
    assert_int_equal(proof.index, r->index);
    assert_int_equal(proof.extra_len, r->leaf_len);
    assert_memory_equal(proof.extra, r->leaf, r->leaf_len);
    if (!cv_audit_proof_check(&proof, r->leaf, r->leaf_len, verifier, NULL, &err))
        print_error("receipt of seq %llu: %s\n", (unsigned long long)r->seq, err.msg);
    assert_true(cv_audit_proof_check(&proof, r->leaf, r->leaf_len, verifier, NULL, &err));
    /* a leaf that is not the one proven fails */
    uint8_t *other = malloc(r->leaf_len);
    memcpy(other, r->leaf, r->leaf_len);
    other[r->leaf_len / 2] ^= 1;
    assert_false(cv_audit_proof_check(&proof, other, r->leaf_len, verifier, NULL, &err));
    free(other);
    cv_audit_proof_clear(&proof);
    assert_true(leaf_has(r, "\"event\":\"delivered\""));
    snprintf(text, sizeof text, "\"agency\":\"%s\",\"feed\":null,\"deliveries\":[", agency);
    assert_true(leaf_has(r, text));
    /* the leaf lists this delivery, with the hash of the view received */
    snprintf(text, sizeof text, "{\"report\":\"%s\",\"seq\":%llu,\"view\":\"%s\"}", s->id,
             (unsigned long long)r->seq, s->view);
    assert_true(leaf_has(r, text));
}

/*  Receives until want receipts came, or timeout_ms passed; how many. */
static int collect_receipts(cv_client_t *c, const cv_note_verifier_t *verifier, const char *agency,
                            seen_t *seen, int n, int want, int timeout_ms)
{
    int got = 0;
    int64_t deadline = zclock_mono() + timeout_ms;
    while (got < want && zclock_mono() < deadline) {
        assert_null(receive(c, 50)); /* nothing more is delivered */
        const cv_receipt_t *r;
        while ((r = cv_client_receipt(c))) {
            check_receipt(r, verifier, agency, seen, n);
            got++;
        }
    }
    return got;
}

static void test_each_delivery_gets_a_receipt_of_its_own_agency(void **state)
{
    (void)state;
    harness_t *h = started();
    cv_note_verifier_t verifier = broker_verifier(h);
    cv_client_t *council = subscriber(h, "hull-cc", true);
    cv_client_t *ctu = subscriber(h, "ne-ctu", true);
    publish_examples(h, N);
    seen_t council_seen[N] = {0}, ctu_seen[N] = {0};
    receive_all(council, council_seen, N);
    receive_all(ctu, ctu_seen, N);
    /* each gets its own, once each: a receipt of the other's would name
     * the other agency and fail check_receipt */
    assert_int_equal(collect_receipts(council, &verifier, "hull-cc", council_seen, N, N, 10000), N);
    assert_int_equal(collect_receipts(ctu, &verifier, "ne-ctu", ctu_seen, N, N, 10000), N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(council_seen[i].receipts, 1);
        assert_int_equal(ctu_seen[i].receipts, 1);
    }
    /* and nothing more comes */
    assert_int_equal(collect_receipts(council, &verifier, "hull-cc", council_seen, N, 1, 700), 0);
    cv_client_destroy(&ctu);
    cv_client_destroy(&council);
    finish(&h);
}

/*  How many deliveries a "delivered" leaf lists. */
static int deliveries_in(const cv_receipt_t *r)
{
    int n = 0;
    const char *leaf = (const char *)r->leaf;
    for (const char *p = leaf, *end = leaf + r->leaf_len;
         (p = memmem(p, (size_t)(end - p), "\"seq\":", 6)); p += 6)
        n++;
    return n;
}

/*  One acknowledgement of many deliveries is recorded in leaves of at most
 *  16 deliveries (cv_record.h): every delivery in exactly one leaf, each
 *  with its own view, and a receipt for each naming the leaf it is in. */
static void test_one_acknowledgement_of_many_is_recorded_sixteen_to_a_leaf(void **state)
{
    (void)state;
    enum { MANY = 40 };
    harness_t *h = started();
    cv_note_verifier_t verifier = broker_verifier(h);
    cv_client_t *council = subscriber(h, "hull-cc", true);
    publish_examples(h, MANY);
    seen_t seen[MANY] = {0};
    receive_views(council, seen, MANY, false); /* and acknowledged once, at the end */
    assert_true(cv_client_ack(council, MANY, &(cv_error_t){0}));
    uint64_t indexes[MANY];
    int got = 0, leaves = 0;
    int64_t deadline = zclock_mono() + 10000;
    while (got < MANY && zclock_mono() < deadline) {
        assert_null(receive(council, 50));
        const cv_receipt_t *r;
        while ((r = cv_client_receipt(council)) && got < MANY) {
            check_receipt(r, &verifier, "hull-cc", seen, MANY);
            assert_in_range(deliveries_in(r), 1, CV_RECORD_DELIVERIES_PER_LEAF_TESTED);
            leaves += got == 0 || indexes[got - 1] != r->index;
            indexes[got++] = r->index;
        }
    }
    assert_int_equal(got, MANY);
    for (int i = 0; i < MANY; i++)
        assert_int_equal(seen[i].receipts, 1);
    assert_int_equal(leaves, 3); /* 16 + 16 + 8, one after another */
    cv_client_destroy(&council);
    finish(&h);
}

/*  The broker itself sends no Receipts to a session that did not ask
 *  (libcaveat would drop them: the wire is watched here). */
static void test_no_receipts_unless_asked(void **state)
{
    (void)state;
    harness_t *h = started();
    cv_note_verifier_t verifier = broker_verifier(h);
    cv_client_t *council = subscriber(h, "hull-cc", true);
    zsock_t *ctu = raw_subscriber(h, "ne-ctu", 100, false);
    publish_examples(h, 3);
    seen_t council_seen[3] = {0};
    receive_all(council, council_seen, 3);
    size_t delivered = 0;
    Caveat__Wire__Frame *frame;
    while (delivered < 3 && (frame = frame_of(ctu, CAVEAT__WIRE__FRAME__BODY_DELIVER))) {
        delivered += frame->deliver->n_deliveries;
        caveat__wire__frame__free_unpacked(frame, NULL);
    }
    assert_int_equal(delivered, 3);
    send_ack(ctu, 3, -1);
    /* by the time the one that asked has its receipts, the other would
     * have had its own */
    assert_int_equal(collect_receipts(council, &verifier, "hull-cc", council_seen, 3, 3, 10000), 3);
    zsock_set_rcvtimeo(ctu, 1000);
    frame = frame_of(ctu, CAVEAT__WIRE__FRAME__BODY_RECEIPTS);
    assert_null(frame);
    zsock_destroy(&ctu);
    cv_client_destroy(&council);
    finish(&h);
}

/*  Deliveries sent before a restart and acknowledged after it, before the
 *  broker sent them again: their leaves name the views first sent. */
static void test_a_delivery_acknowledged_after_a_restart_names_its_view(void **state)
{
    (void)state;
    harness_t *h = started();
    cv_note_verifier_t verifier = broker_verifier(h);
    cv_client_t *council = subscriber(h, "hull-cc", false);
    publish_examples(h, 3);
    seen_t seen[3] = {0};
    for (int i = 0; i < 3; i++) { /* received, not acknowledged */
        const cv_delivery_t *d = receive(council, 5000);
        assert_non_null(d);
        uint8_t hash[32];
        assert_true(cv_client_view_hash(d, hash));
        snprintf(seen[i].id, sizeof seen[i].id, "%s", d->report_id);
        sodium_bin2hex(seen[i].view, sizeof seen[i].view, hash, sizeof hash);
    }
    cv_client_destroy(&council); /* its last ack sends nothing: none was made */
    assert_true(harness_stop(h));
    assert_true(harness_start(h, NULL));

    /* Hello and the acknowledgement in one go: the broker takes both in
     * one turn, before it pumps the resends */
    zsock_t *dealer = raw_subscriber(h, "hull-cc", 100, true);
    send_ack(dealer, 3, -1);

    int got = 0;
    Caveat__Wire__Frame *answer;
    zsock_set_rcvtimeo(dealer, 5000);
    while (got < 3 && (answer = frame_of(dealer, CAVEAT__WIRE__FRAME__BODY_RECEIPTS))) {
        for (size_t i = 0; i < answer->receipts->n_receipts; i++) {
            const Caveat__Wire__Receipt *in = answer->receipts->receipts[i];
            cv_receipt_t r = {
                in->seq,        in->report_id,         in->index, in->leaf.data, in->leaf.len,
                in->tlog_proof, strlen(in->tlog_proof)};
            check_receipt(&r, &verifier, "hull-cc", seen, 3);
            got++;
        }
        caveat__wire__frame__free_unpacked(answer, NULL);
    }
    assert_int_equal(got, 3);
    zsock_destroy(&dealer);
    finish(&h);
}

/*  Feedback delivered to a report's originator is a delivery like any
 *  other: its leaf names the SHA-256 of the FeedbackNote sent, and the
 *  originator's receipt for it checks against what it received. */
static void test_feedback_to_the_originator_has_its_receipt(void **state)
{
    (void)state;
    harness_t *h = started();
    cv_note_verifier_t verifier = broker_verifier(h);
    cv_client_t *police = subscriber(h, "hum-bcu-hull", true);
    cv_client_t *council = subscriber(h, "hull-cc", false);
    /* published on the police's session: a second session of the agency
     * would take its queue */
    Caveat__Report *report = harness_report("vulnerable_individual");
    cv_publish_result_t result = {0};
    cv_error_t err = {0};
    assert_int_equal(cv_client_publish_one(police, report, &result, 5000, &err), 0);
    cv_publish_results_clear(&result, 1);
    caveat__report__free_unpacked(report, NULL);
    const cv_delivery_t *d = receive(council, 5000);
    assert_non_null(d);
    char id[128];
    snprintf(id, sizeof id, "%s", d->report_id);
    assert_true(cv_client_ack(council, d->seq, &err));
    assert_true(cv_client_feedback(council, id, NULL, "useful", "it helped", 5000, &err));
    seen_t seen[1] = {0};
    receive_all(police, seen, 1);
    assert_string_equal(seen[0].id, id);
    assert_int_equal(collect_receipts(police, &verifier, "hum-bcu-hull", seen, 1, 1, 10000), 1);
    cv_client_destroy(&council);
    cv_client_destroy(&police);
    finish(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_delivery_gets_a_receipt_of_its_own_agency),
        cmocka_unit_test(test_no_receipts_unless_asked),
        cmocka_unit_test(test_a_delivery_acknowledged_after_a_restart_names_its_view),
        cmocka_unit_test(test_feedback_to_the_originator_has_its_receipt),
        cmocka_unit_test(test_one_acknowledgement_of_many_is_recorded_sixteen_to_a_leaf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
