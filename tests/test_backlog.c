/*  Backlogs: what a recipient gets when it connects after being offline.
 *
 *  - a large backlog (CAVEAT_BACKLOG_COUNT reports, default 10,000) arrives
 *    whole, in order of publication, seq 1..N, and nothing after it;
 *  - IMMEDIATE reports overtake the ROUTINE backlog queued before them;
 *  - a policy reload applies to the backlog: a tightened rule changes the
 *    view of what is queued, a removed rule drops it. The expected views
 *    come from the engine with the new policy, not from constants.
 *
 *  Each test starts its own caveatd on a free loopback port.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <czmq.h>

#include "cv_policy.h"
#include "e2e_checks.h"
#include "harness.h"

#define DEFAULT_BACKLOG 10000
#define PUBLISH_BATCH   500
#define BACKLOG_CREDIT  1000
#define ACK_EVERY       100

/* ------------------------------------------------------------------------ */
/*  Helpers.                                                                */

/*  Each test gets a harness and a running broker; teardown removes both,
 *  also after a failure, so that no broker outlives its test. */
static int setup(void **state)
{
    harness_t *h = harness_new();
    if (h && !harness_start(h, NULL))
        harness_destroy(&h);
    *state = h;
    return h ? 0 : -1;
}

static int teardown(void **state)
{
    harness_t *h = *state;
    harness_destroy(&h);
    return 0;
}

/*  Every test ends here: the broker must stop cleanly, sanitizers quiet. */
static void stop_cleanly(harness_t *h)
{
    assert_true(harness_stop(h));
}

/*  An example report, packed: each publish unpacks a fresh copy with no
 *  id, so that libcaveat gives every report an id of its own. */
typedef struct {
    uint8_t *bytes;
    size_t len;
} template_t;

static template_t template_of(const char *name)
{
    Caveat__Report *r = harness_report(name);
    assert_non_null(r);
    assert_null(r->id);
    template_t t = {.len = caveat__report__get_packed_size(r)};
    t.bytes = malloc(t.len);
    caveat__report__pack(r, t.bytes);
    caveat__report__free_unpacked(r, NULL);
    return t;
}

static Caveat__Report *report_of(const template_t *t)
{
    Caveat__Report *r = caveat__report__unpack(NULL, t->len, t->bytes);
    assert_non_null(r);
    return r;
}

/*  Publishes n copies of t in batches; the ids, in publication order, go
 *  to ids[] (malloc'd). */
static void publish_copies(cv_client_t *c, const template_t *t, size_t n, char **ids)
{
    Caveat__Report **batch = calloc(PUBLISH_BATCH, sizeof *batch);
    cv_publish_result_t *results = calloc(PUBLISH_BATCH, sizeof *results);
    for (size_t done = 0; done < n;) {
        size_t k = n - done < PUBLISH_BATCH ? n - done : PUBLISH_BATCH;
        for (size_t i = 0; i < k; i++)
            batch[i] = report_of(t);
        cv_error_t err = {0};
        int refused =
            cv_client_publish(c, (const Caveat__Report *const *)batch, k, results, 30000, &err);
        if (refused != 0)
            print_error("publish: %s\n", refused < 0 ? err.msg : results[0].reason);
        assert_int_equal(refused, 0);
        for (size_t i = 0; i < k; i++) {
            assert_int_equal(results[i].status, CAVEAT__WIRE__STATUS__OK);
            ids[done + i] = strdup(results[i].report_id);
            caveat__report__free_unpacked(batch[i], NULL);
        }
        cv_publish_results_clear(results, k);
        done += k;
    }
    free(results);
    free(batch);
}

static void free_ids(char **ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
}

static void ack(cv_client_t *c, uint64_t seq)
{
    cv_error_t err = {0};
    if (!cv_client_ack(c, seq, &err))
        print_error("ack: %s\n", err.msg);
    assert_true(err.msg[0] == '\0');
}

/*  Receives n deliveries; they must be ids[0..n-1] in that order, with seq
 *  first_seq, first_seq + 1, ... Acknowledges as it goes. */
static void expect_in_order(cv_client_t *c, char **ids, size_t n, uint64_t first_seq)
{
    for (size_t i = 0; i < n; i++) {
        const cv_delivery_t *d = receive(c, 10000);
        if (!d)
            print_error("only %zu of %zu deliveries arrived\n", i, n);
        assert_non_null(d);
        if (strcmp(d->report_id, ids[i]) != 0 || d->seq != first_seq + i)
            print_error("delivery %zu: %s seq %llu, expected %s seq %llu\n", i, d->report_id,
                        (unsigned long long)d->seq, ids[i], (unsigned long long)(first_seq + i));
        assert_string_equal(d->report_id, ids[i]);
        assert_int_equal(d->seq, first_seq + i);
        if ((i + 1) % ACK_EVERY == 0 || i + 1 == n)
            ack(c, d->seq);
    }
}

/*  text without the rule named name (its "  - name:" line up to the next
 *  entry). */
static char *without_rule(const char *text, const char *name)
{
    char header[128];
    snprintf(header, sizeof header, "\n  - name: %s\n", name);
    const char *start = strstr(text, header);
    assert_non_null(start);
    const char *end = strstr(start + 1, "\n  - name: ");
    assert_non_null(end);
    char *out = malloc(strlen(text) + 1);
    size_t head = (size_t)(start - text);
    memcpy(out, text, head);
    strcpy(out + head, end);
    return out;
}

static void reload(harness_t *h, const char *policy)
{
    harness_write_policy(h, policy);
    cv_client_t *admin = client(h, "caveat-admin", NULL, 0);
    bool ok = false;
    cv_error_t err = {0};
    char *text = cv_client_admin(admin, "reload", &ok, 5000, &err);
    if (!text || !ok)
        print_error("reload: %s\n", text ? text : err.msg);
    assert_non_null(text);
    assert_true(ok);
    free(text);
    cv_client_destroy(&admin);
}

/*  Reloads the policy text original as version, without the rule named
 *  rule (NULL: with all its rules). */
static void reload_as(harness_t *h, const char *original, int version, const char *rule)
{
    char to[32];
    snprintf(to, sizeof to, "version: %d", version);
    char *edited = text_replace(original, "\nversion: ", "version: 7", to);
    char *without = rule ? without_rule(edited, rule) : NULL;
    reload(h, without ? without : edited);
    free(without);
    free(edited);
}

/*  The policy now in DIR/policy.yaml, with the broker's pseudonym key: the
 *  engine's views are then the broker's, byte for byte. */
static cv_policy_t *policy_of(harness_t *h)
{
    uint8_t key[CV_KEY_BYTES];
    FILE *f = fopen(harness_path(h, "data/pseudonym.key"), "rb");
    assert_non_null(f);
    assert_int_equal(fread(key, 1, sizeof key, f), sizeof key);
    fclose(f);
    cv_error_t err = {0};
    cv_policy_t *policy = cv_policy_load_file(harness_path(h, "policy.yaml"), key, &err);
    if (!policy)
        print_error("%s\n", err.msg);
    assert_non_null(policy);
    return policy;
}

static uint8_t *packed(const Caveat__Report *r, size_t *len)
{
    *len = caveat__report__get_packed_size(r);
    uint8_t *bytes = malloc(*len ? *len : 1);
    caveat__report__pack(r, bytes);
    return bytes;
}

/*  The engine's view of report for agency under policy, packed; NULL when
 *  the policy does not send it there. */
static uint8_t *engine_view(const cv_policy_t *policy, const Caveat__Report *report,
                            const char *agency, size_t *len)
{
    int a = cv_policy_agency_find(policy, agency);
    assert_true(a >= 0);
    cv_decision_t *decision = cv_decision_new();
    uint8_t *bytes = NULL;
    if (cv_policy_decide(policy, report, a, NULL, decision)) {
        Caveat__Report *view = cv_decision_view(decision, report);
        bytes = packed(view, len);
        protobuf_c_message_free_unpacked(&view->base, NULL);
    }
    cv_decision_destroy(&decision);
    return bytes;
}

/*  The report as the broker stored it: the template with its id and the
 *  originator the broker set (the sender, as the example already says). */
static Caveat__Report *stored_report(const template_t *t, const char *id)
{
    Caveat__Report *r = report_of(t);
    free(r->id);
    r->id = strdup(id);
    return r;
}

/* ------------------------------------------------------------------------ */
/*  Order.                                                                  */

static void test_offline_recipient_gets_whole_backlog_in_order(void **state)
{
    harness_t *h = *state;
    const char *count = getenv("CAVEAT_BACKLOG_COUNT");
    size_t n = count && atol(count) > 0 ? (size_t)atol(count) : DEFAULT_BACKLOG;

    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    template_t referral = template_of("vulnerable_individual");
    char **ids = calloc(n, sizeof *ids);
    int64_t start = zclock_mono();
    publish_copies(police, &referral, n, ids); /* hull-cc is offline */
    int64_t published = zclock_mono();

    cv_client_t *council = client(h, "hull-cc", NULL, BACKLOG_CREDIT);
    expect_in_order(council, ids, n, 1);
    assert_nothing_arrives(council, 500);
    /* a whole credit's worth waited in the report cache: none was read back */
    if (n <= DEFAULT_BACKLOG)
        assert_int_equal(stat_of(h, "read_back"), 0);
    printf("backlog: %zu reports published in %.1f s, received in order in %.1f s\n", n,
           (published - start) / 1000.0, (zclock_mono() - published) / 1000.0);
    cv_client_destroy(&council);

    council = client(h, "hull-cc", NULL, 0); /* all acknowledged: nothing comes back */
    assert_nothing_arrives(council, 300);
    cv_client_destroy(&council);
    cv_client_destroy(&police);
    free_ids(ids, n);
    free(referral.bytes);
    stop_cleanly(h);
}

/*  Reports the broker stamps (no creation time, no id) in Publishes of
 *  many: each stored body carries the checksum of exactly its bytes, taken
 *  beside the loop, so read back after a restart every one is delivered
 *  and none is quarantined. */
static void test_stamped_reports_read_back_intact(void **state)
{
    harness_t *h = *state;
    Caveat__Report *r = harness_report("vulnerable_individual");
    free(r->created);
    r->created = NULL;
    template_t unstamped = {.len = caveat__report__get_packed_size(r)};
    unstamped.bytes = malloc(unstamped.len);
    caveat__report__pack(r, unstamped.bytes);
    caveat__report__free_unpacked(r, NULL);

    enum { STAMPED = 3 * PUBLISH_BATCH + 7 };
    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    char **ids = calloc(STAMPED, sizeof *ids);
    publish_copies(police, &unstamped, STAMPED, ids); /* hull-cc is offline */
    cv_client_destroy(&police);
    assert_true(harness_stop(h)); /* what is delivered now is read from the store */
    assert_true(harness_start(h, NULL));

    cv_client_t *council = client(h, "hull-cc", NULL, BACKLOG_CREDIT);
    expect_in_order(council, ids, STAMPED, 1);
    cv_client_destroy(&council);
    assert_int_equal(stat_of(h, "quarantined"), 0);
    assert_true(stat_of(h, "read_back") >= STAMPED);
    free_ids(ids, STAMPED);
    free(unstamped.bytes);
    stop_cleanly(h);
}

/*  50 ROUTINE referrals, then 5 IMMEDIATE critical incidents, for agency:
 *  the incidents come first, each kind in order of publication. */
static void expect_immediate_first(harness_t *h, const char *agency, char **routine,
                                   char **immediate)
{
    cv_client_t *c = client(h, agency, NULL, 0);
    expect_in_order(c, immediate, 5, 1);
    expect_in_order(c, routine, 50, 6);
    assert_nothing_arrives(c, 300);
    cv_client_destroy(&c);
}

static void test_immediate_overtakes_routine_backlog(void **state)
{
    harness_t *h = *state;
    template_t referral = template_of("vulnerable_individual");
    template_t incident = template_of("critical_incident");
    Caveat__Report *r = report_of(&referral), *i = report_of(&incident);
    assert_int_equal(r->priority, CAVEAT__PRIORITY__ROUTINE);
    assert_int_equal(i->priority, CAVEAT__PRIORITY__IMMEDIATE);
    cv_policy_t *policy = policy_of(h);
    const char *recipients[] = {"ne-ctu", "hum-sb"}; /* both get both categories */
    for (size_t k = 0; k < 2; k++) {
        size_t len;
        uint8_t *a = engine_view(policy, r, recipients[k], &len);
        uint8_t *b = engine_view(policy, i, recipients[k], &len);
        assert_non_null(a);
        assert_non_null(b);
        free(a);
        free(b);
    }
    cv_policy_destroy(&policy);
    caveat__report__free_unpacked(r, NULL);
    caveat__report__free_unpacked(i, NULL);

    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    char **routine = calloc(50, sizeof *routine), **immediate = calloc(5, sizeof *immediate);
    publish_copies(police, &referral, 50, routine);
    publish_copies(police, &incident, 5, immediate);
    for (size_t k = 0; k < 2; k++)
        expect_immediate_first(h, recipients[k], routine, immediate);
    cv_client_destroy(&police);
    free_ids(routine, 50);
    free_ids(immediate, 5);
    free(referral.bytes);
    free(incident.bytes);
    stop_cleanly(h);
}

/* ------------------------------------------------------------------------ */
/*  A reload applies to the backlog.                                        */

enum { REFERRALS = 20 };

/*  Publishes REFERRALS referrals with the council offline; their ids. */
static char **queue_referrals(harness_t *h, const template_t *referral)
{
    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    char **ids = calloc(REFERRALS, sizeof *ids);
    publish_copies(police, referral, REFERRALS, ids);
    cv_client_destroy(&police);
    return ids;
}

static void test_tightened_rule_applies_to_backlog(void **state)
{
    harness_t *h = *state;
    template_t referral = template_of("vulnerable_individual");
    char **ids = queue_referrals(h, &referral);
    cv_policy_t *old_policy = policy_of(h);

    char *text = read_text(harness_path(h, "policy.yaml"));
    char *v8 = text_replace(text, "\nversion: ", "version: 7", "version: 8");
    char *tight = text_replace(v8, "- name: safeguarding-referral\n",
                               "      subjects.name: share\n", "      subjects.name: deny\n");
    reload(h, tight);
    cv_policy_t *new_policy = policy_of(h);

    cv_client_t *council = client(h, "hull-cc", NULL, 0);
    for (size_t i = 0; i < REFERRALS; i++) {
        const cv_delivery_t *d = receive(council, 5000);
        assert_non_null(d);
        assert_string_equal(d->report_id, ids[i]);
        Caveat__Report *stored = stored_report(&referral, ids[i]);
        size_t want_len, old_len, got_len;
        uint8_t *want = engine_view(new_policy, stored, "hull-cc", &want_len);
        uint8_t *old = engine_view(old_policy, stored, "hull-cc", &old_len);
        uint8_t *got = packed(d->report, &got_len);
        assert_non_null(want);
        assert_non_null(old);
        /* the new view, not the one in force when the report was queued */
        assert_true(got_len == want_len && memcmp(got, want, want_len) == 0);
        assert_false(old_len == want_len && memcmp(old, want, want_len) == 0);
        assert_true(d->report->n_subjects >= 1);
        assert_null(d->report->subjects[0]->name);
        assert_string_equal(d->report->subjects[0]->postcode, "HU3"); /* still masked */
        free(want);
        free(old);
        free(got);
        caveat__report__free_unpacked(stored, NULL);
        ack(council, d->seq);
    }
    assert_nothing_arrives(council, 300);
    cv_client_destroy(&council);
    cv_policy_destroy(&old_policy);
    cv_policy_destroy(&new_policy);
    free(text);
    free(v8);
    free(tight);
    free_ids(ids, REFERRALS);
    free(referral.bytes);
    stop_cleanly(h);
}

static void test_removed_rule_drops_backlog(void **state)
{
    harness_t *h = *state;
    template_t referral = template_of("vulnerable_individual");
    char **ids = queue_referrals(h, &referral);
    long queued = stat_of(h, "queued");
    cv_policy_t *old_policy = policy_of(h);
    Caveat__Report *first = stored_report(&referral, ids[0]);
    size_t old_len;
    uint8_t *old = engine_view(old_policy, first, "hull-cc", &old_len);
    assert_non_null(old); /* queued for the council before the reload */
    free(old);
    caveat__report__free_unpacked(first, NULL);
    cv_policy_destroy(&old_policy);

    char *text = read_text(harness_path(h, "policy.yaml"));
    reload_as(h, text, 8, "safeguarding-referral");
    cv_policy_t *policy = policy_of(h);
    for (size_t i = 0; i < REFERRALS; i++) { /* the new policy sends the council none */
        Caveat__Report *stored = stored_report(&referral, ids[i]);
        size_t len;
        assert_null(engine_view(policy, stored, "hull-cc", &len));
        caveat__report__free_unpacked(stored, NULL);
    }

    cv_client_t *council = client(h, "hull-cc", NULL, 0);
    assert_nothing_arrives(council, 1000);
    /* dropped from the council's queue, and only from it */
    assert_int_equal(stat_of(h, "queued"), queued - REFERRALS);
    cv_client_destroy(&council);
    cv_policy_destroy(&policy);
    free(text);
    free_ids(ids, REFERRALS);
    free(referral.bytes);
    stop_cleanly(h);
}

/*  Seqs in flight that a reload stops releasing are skipped when a new
 *  session resends, and take none of its credit: it gets what is released,
 *  and never more than its credit unacknowledged. */
static void test_unreleased_in_flight_takes_no_credit(void **state)
{
    harness_t *h = *state;
    template_t referral = template_of("vulnerable_individual");
    template_t concern = template_of("radicalisation_concern");
    char **ids = queue_referrals(h, &referral);
    cv_client_t *council = client(h, "hull-cc", NULL, 5);
    for (int i = 0; i < 5; i++) /* seqs 1..5, never acknowledged */
        assert_non_null(receive(council, 5000));
    cv_client_destroy(&council);

    char *text = read_text(harness_path(h, "policy.yaml"));
    reload_as(h, text, 8, "safeguarding-referral");
    enum { CONCERNS = 8 };
    cv_client_t *police = client(h, "hum-bcu-hull", NULL, 0);
    char **concern_ids = calloc(CONCERNS, sizeof *concern_ids);
    publish_copies(police, &concern, CONCERNS, concern_ids);
    cv_client_destroy(&police);

    council = client(h, "hull-cc", NULL, 5);
    uint64_t first = 0;
    for (int i = 0; i < 5; i++) { /* the credit's worth, all concerns */
        const cv_delivery_t *d = receive(council, 5000);
        assert_non_null(d);
        assert_string_equal(d->report_id, concern_ids[i]);
        first = first ? first : d->seq;
    }
    assert_nothing_arrives(council, 300); /* five unacknowledged: the credit */
    ack(council, first);                  /* frees one delivery's credit, not the skipped seqs' */
    const cv_delivery_t *d = receive(council, 5000);
    assert_non_null(d);
    assert_string_equal(d->report_id, concern_ids[5]);
    assert_nothing_arrives(council, 300);
    cv_client_destroy(&council);
    free(text);
    free_ids(ids, REFERRALS);
    free_ids(concern_ids, CONCERNS);
    free(referral.bytes);
    free(concern.bytes);
    stop_cleanly(h);
}

/*  The council takes the first referral (seq 1) and goes without
 *  acknowledging it; then a reload stops releasing referrals to councils.
 *  Returns the policy text as it was (malloc'd). */
static char *first_in_flight_then_unreleased(harness_t *h, char **ids)
{
    cv_client_t *council = client(h, "hull-cc", NULL, 1);
    const cv_delivery_t *d = receive(council, 5000);
    assert_non_null(d);
    assert_string_equal(d->report_id, ids[0]);
    cv_client_destroy(&council);
    char *text = read_text(harness_path(h, "policy.yaml"));
    reload_as(h, text, 8, "safeguarding-referral");
    return text;
}

/*  A report the policy stopped releasing is dropped for good: put back by
 *  a later reload and read back by a restart, it is still not sent, even
 *  while an earlier report of the queue is still unacknowledged. */
static void test_dropped_report_stays_dropped(void **state)
{
    harness_t *h = *state;
    template_t referral = template_of("vulnerable_individual");
    char **ids = queue_referrals(h, &referral);
    char *text = first_in_flight_then_unreleased(h, ids);
    cv_client_t *council = client(h, "hull-cc", NULL, 50); /* takes the rest, and drops it */
    assert_nothing_arrives(council, 500);
    cv_client_destroy(&council);
    reload_as(h, text, 9, NULL); /* the rule is back */
    assert_true(harness_stop(h));
    assert_true(harness_start(h, NULL));

    council = client(h, "hull-cc", NULL, 50);
    const cv_delivery_t *d = receive(council, 5000);
    assert_non_null(d); /* the one in flight, released again, with its seq */
    assert_string_equal(d->report_id, ids[0]);
    assert_int_equal(d->seq, 1);
    ack(council, d->seq);
    assert_nothing_arrives(council, 500); /* the dropped ones stay dropped */
    cv_client_destroy(&council);
    free(text);
    free_ids(ids, REFERRALS);
    free(referral.bytes);
    stop_cleanly(h);
}

/*  A seq in flight that one reload stopped releasing is sent, with its
 *  seq, as soon as a later reload releases it again, on the session that
 *  is open: decided when sent, under the policy in force. */
static void test_in_flight_released_again_is_resent(void **state)
{
    harness_t *h = *state;
    template_t referral = template_of("vulnerable_individual");
    char **ids = queue_referrals(h, &referral);
    char *text = first_in_flight_then_unreleased(h, ids);
    cv_client_t *council = client(h, "hull-cc", NULL, 1);
    assert_nothing_arrives(council, 500); /* seq 1 skipped, the rest dropped */
    reload_as(h, text, 9, NULL);
    const cv_delivery_t *d = receive(council, 5000); /* the same session */
    assert_non_null(d);
    assert_string_equal(d->report_id, ids[0]);
    assert_int_equal(d->seq, 1);
    ack(council, d->seq);
    assert_nothing_arrives(council, 300);
    cv_client_destroy(&council);
    free(text);
    free_ids(ids, REFERRALS);
    free(referral.bytes);
    stop_cleanly(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_offline_recipient_gets_whole_backlog_in_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stamped_reports_read_back_intact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_immediate_overtakes_routine_backlog, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tightened_rule_applies_to_backlog, setup, teardown),
        cmocka_unit_test_setup_teardown(test_removed_rule_drops_backlog, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreleased_in_flight_takes_no_credit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dropped_report_stays_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_in_flight_released_again_is_resent, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
