/*  The broker's audit log, end to end: the real caveatd writes a leaf per
 *  event in the transaction of what it records, signs checkpoints, and
 *  refuses to start on a log that was changed underneath; the real
 *  `caveat audit verify` checks what it wrote (broker/cv_record.h).
 */
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <sodium.h>
#include <sqlite3.h>

#include "audit_cli.h"
#include "cv_audit.h"
#include "e2e_checks.h"
#include "harness.h"

/*  sql prepared on the store of h, opened read-only; done() closes both. */
static sqlite3_stmt *query(harness_t *h, const char *sql)
{
    char path[600];
    snprintf(path, sizeof path, "%s/caveat.db", harness_path(h, "data"));
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    return s;
}

static void done(sqlite3_stmt *s)
{
    sqlite3 *db = sqlite3_db_handle(s);
    sqlite3_finalize(s);
    sqlite3_close(db);
}

/*  The leaves, in order, as one text (one JSON object a line). */
static char *leaves(harness_t *h)
{
    sqlite3_stmt *s = query(h, "SELECT data FROM tlog_leaves ORDER BY idx");
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    while (sqlite3_step(s) == SQLITE_ROW)
        fprintf(out, "%.*s\n", sqlite3_column_bytes(s, 0), (const char *)sqlite3_column_blob(s, 0));
    fclose(out);
    done(s);
    return text;
}

static int salt_order(const void *a, const void *b)
{
    return memcmp(a, b, 32);
}

/*  Every leaf (one a line of text) opens with its event, its time and a
 *  salt of 16 random bytes, and no two leaves have the same salt: a leaf's
 *  hash, which goes to other agencies in the proofs of their receipts,
 *  must not be matched against a guess of what the leaf says. At least
 *  min leaves. */
static void assert_salted(const char *text, int min)
{
    regex_t opening;
    assert_int_equal(
        regcomp(&opening, "^\\{\"event\":\"[^\"]+\",\"time\":[0-9]+,\"salt\":\"([0-9a-f]{32})\",",
                REG_EXTENDED),
        0);
    size_t n = 0, cap = 64;
    char(*salts)[32] = malloc(cap * sizeof *salts);
    for (const char *line = text; *line; line = strchr(line, '\n') + 1) {
        regmatch_t m[2];
        if (regexec(&opening, line, 2, m, 0) != 0)
            fail_msg("a leaf without its salt: %.*s", (int)strcspn(line, "\n"), line);
        if (n == cap)
            salts = realloc(salts, (cap *= 2) * sizeof *salts);
        memcpy(salts[n++], line + m[1].rm_so, 32);
    }
    qsort(salts, n, sizeof *salts, salt_order);
    for (size_t i = 1; i < n; i++)
        if (memcmp(salts[i - 1], salts[i], 32) == 0)
            fail_msg("two leaves salted alike: %.32s", salts[i]);
    assert_true(n >= (size_t)min);
    free(salts);
    regfree(&opening);
}

/*  `caveat audit verify` on the data directory: its exit status. */
static int verify(harness_t *h, char *out, size_t size)
{
    char args[1200];
    snprintf(args, sizeof args, "verify '%s'", harness_path(h, "data"));
    return audit_cli(args, out, size);
}

/*  Publishes example report name as agency, under id (NULL: a new one),
 *  claiming originator (NULL: as it is); its status, and the id it was
 *  given in out. */
static int publish_claiming(harness_t *h, const char *agency, const char *name, const char *id,
                            const char *originator, char *out, size_t size)
{
    cv_client_t *c = sender_of(h, agency);
    Caveat__Report *report = harness_report(name);
    free(report->id);
    report->id = id ? strdup(id) : NULL;
    if (originator) {
        free(report->originator);
        report->originator = strdup(originator);
    }
    cv_publish_result_t result = {0};
    cv_error_t err = {0};
    assert_true(cv_client_publish_one(c, report, &result, 5000, &err) >= 0);
    snprintf(out, size, "%s", result.report_id ? result.report_id : "");
    int status = result.status;
    cv_publish_results_clear(&result, 1);
    caveat__report__free_unpacked(report, NULL);
    cv_client_destroy(&c);
    return status;
}

static int publish_as(harness_t *h, const char *agency, const char *name, const char *id, char *out,
                      size_t size)
{
    return publish_claiming(h, agency, name, id, NULL, out, size);
}

static int publish_example(harness_t *h, const char *name, const char *originator, char *id,
                           size_t size)
{
    return publish_claiming(h, "hum-bcu-hull", name, NULL, originator, id, size);
}

static void assert_has(const char *text, const char *what)
{
    if (!strstr(text, what))
        print_error("no %s in the leaves:\n%s", what, text);
    assert_non_null(strstr(text, what));
}

/*  The accepted leaf of report id names its body as stored, by the
 *  SHA-256 of those bytes (worked out here, not the store's checksum
 *  column), and says that it is SHA-256. */
static void assert_names_stored_body(harness_t *h, const char *text, const char *id)
{
    char sql[160], hex[2 * CV_HASH_BYTES + 1], want[256];
    snprintf(sql, sizeof sql, "SELECT body FROM reports WHERE id = '%s'", id);
    sqlite3_stmt *s = query(h, sql);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    uint8_t sum[CV_HASH_BYTES];
    cv_audit_sha256(sqlite3_column_blob(s, 0), (size_t)sqlite3_column_bytes(s, 0), sum);
    done(s);
    sodium_bin2hex(hex, sizeof hex, sum, sizeof sum);
    snprintf(want, sizeof want, "\"stored\":\"%s\",\"stored_hash\":\"sha-256\"", hex);
    assert_has(text, want);
}

/*  What the broker did is in the log, and the log verifies: the policy at
 *  start, a report accepted with who got it under which rule, a spoofed
 *  report refused, a reload; a checkpoint signed at the stop covers all. */
static void test_what_the_broker_did_is_in_its_log(void **state)
{
    (void)state;
    harness_t *h = started();
    char id[64], spoofed[64], want[256];
    assert_int_equal(publish_example(h, "vulnerable_individual", NULL, id, sizeof id),
                     CAVEAT__WIRE__STATUS__OK);
    assert_int_equal(publish_example(h, "vulnerable_individual", "ne-ctu", spoofed, sizeof spoofed),
                     CAVEAT__WIRE__STATUS__REFUSED_SPOOFED_ORIGINATOR);
    bool ok = false;
    free(admin(h, "reload", &ok));
    assert_true(ok);
    assert_true(harness_stop(h)); /* a clean stop signs what the log holds */

    char *text = leaves(h);
    assert_true(strncmp(text, "{\"event\":\"policy\"", 17) == 0);
    snprintf(want, sizeof want, "{\"event\":\"accepted\",");
    assert_has(text, want);
    snprintf(want, sizeof want, "\"report\":\"%s\",\"originator\":\"hum-bcu-hull\"", id);
    assert_has(text, want);
    assert_names_stored_body(h, text, id);
    assert_has(text, "{\"agency\":\"hull-cc\",\"organisation\":\"hull-city-council\","
                     "\"delivered\":true,\"rules\":[\"");
    assert_has(text, "\"status\":\"REFUSED_SPOOFED_ORIGINATOR\"");
    assert_has(text, "\"agency\":\"caveat-admin\",\"action\":\"reload\",\"ok\":true");
    /* names and decisions, never content: the narrative's field is named,
     * its text is not; nor is the subject's name */
    assert_null(strstr(text, "Mother called 101"));
    assert_null(strstr(text, "Jordan"));
    assert_salted(text, 4);
    free(text);

    int64_t n = store_count(h, "SELECT count(*) FROM tlog_leaves");
    assert_int_equal(store_count(h, "SELECT max(size) FROM tlog_checkpoints"), n);
    char out[4096];
    int status = verify(h, out, sizeof out);
    if (status != 0)
        print_error("verify: %s", out);
    assert_int_equal(status, 0);
    finish(&h);
}

/*  Publishes n example reports in one call as the police (n of them, about
 *  1.5 KB each, make a Publish that the checksums' worker is handed);
 *  without created and under id when id is given. Returns those refused. */
static int publish_batch(harness_t *h, int n, const char *id)
{
    cv_client_t *police = sender_of(h, "hum-bcu-hull");
    Caveat__Report *reports[64];
    cv_publish_result_t results[64];
    assert_true(n <= 64);
    memset(results, 0, sizeof results);
    for (int i = 0; i < n; i++) {
        reports[i] = harness_report("vulnerable_individual");
        free(reports[i]->id);
        reports[i]->id = id ? strdup(id) : NULL;
        if (id) { /* stamped by the broker: a retry is known by its digest as sent */
            free(reports[i]->created);
            reports[i]->created = NULL;
        }
    }
    cv_error_t err = {0};
    int refused = cv_client_publish(police, (const Caveat__Report *const *)reports, (size_t)n,
                                    results, 10000, &err);
    cv_publish_results_clear(results, (size_t)n);
    for (int i = 0; i < n; i++)
        caveat__report__free_unpacked(reports[i], NULL);
    cv_client_destroy(&police);
    return refused;
}

/*  The broker draws salts a block of 256 at a time, each block from a key
 *  the block before it gave: over several blocks, still no two leaves are
 *  salted alike. */
static void test_no_two_leaves_are_salted_alike(void **state)
{
    (void)state;
    harness_t *h = started();
    for (int i = 0; i < 10; i++)
        assert_int_equal(publish_batch(h, 60, NULL), 0);
    assert_true(harness_stop(h));
    char *text = leaves(h);
    assert_salted(text, 600);
    free(text);
    finish(&h);
}

/*  A store made by a broker before this one's format (4) keeps BLAKE2b-256
 *  checksums for life: this broker writes every new report's checksum and
 *  digest in that sum too, large Publishes (taken beside the loop) and
 *  small ones alike, so that everything reads back after a restart, a
 *  stamped report's retry is the same report, and the accepted leaves name
 *  the BLAKE2b of what they stored, without "stored_hash". Worked out here
 *  with libsodium, not with the broker's functions. */
static void test_a_store_of_format_4_keeps_its_checksums(void **state)
{
    (void)state;
    harness_t *h = started();
    assert_true(harness_stop(h));
    store_sql(h, "UPDATE meta SET value = '4' WHERE key = 'version'");
    assert_true(harness_start(h, NULL));
    assert_int_equal(publish_batch(h, 40, NULL), 0);
    assert_int_equal(publish_batch(h, 1, "r-stamped"), 0);
    assert_int_equal(publish_batch(h, 1, "r-stamped"), 0); /* a retry: the same report */
    assert_true(harness_stop(h));
    assert_true(harness_start(h, NULL));
    cv_client_t *council = client(h, "hull-cc", NULL, 100); /* its backlog, read back */
    int received = 0;
    while (receive(council, 3000))
        received++;
    cv_client_destroy(&council);
    assert_int_equal(received, 41);
    assert_true(harness_stop(h));

    assert_int_equal(store_count(h, "SELECT count(*) FROM reports"), 41);
    assert_int_equal(store_count(h, "SELECT count(*) FROM quarantine"), 0);
    char *text = leaves(h);
    assert_null(strstr(text, "stored_hash"));
    sqlite3_stmt *s = query(h, "SELECT checksum, body FROM reports");
    while (sqlite3_step(s) == SQLITE_ROW) {
        uint8_t sum[crypto_generichash_BYTES];
        char hex[2 * sizeof sum + 1], want[160];
        crypto_generichash(sum, sizeof sum, sqlite3_column_blob(s, 1),
                           (size_t)sqlite3_column_bytes(s, 1), NULL, 0);
        assert_int_equal(sqlite3_column_bytes(s, 0), sizeof sum);
        assert_memory_equal(sqlite3_column_blob(s, 0), sum, sizeof sum);
        snprintf(want, sizeof want, "\"stored\":\"%s\"",
                 sodium_bin2hex(hex, sizeof hex, sum, sizeof sum));
        assert_has(text, want);
    }
    done(s);
    free(text);
    harness_destroy(&h);
}

/*  A turn that rolls back takes its leaves with it: the publish refused
 *  as unavailable has no "accepted" leaf, and the log still verifies. */
static void test_a_rolled_back_turn_leaves_no_leaf(void **state)
{
    (void)state;
    harness_t *h = started();
    store_sql(h, "CREATE TRIGGER fail BEFORE INSERT ON routes BEGIN SELECT RAISE(ABORT, 'x'); END");
    char id[64];
    assert_int_equal(publish_example(h, "vulnerable_individual", NULL, id, sizeof id),
                     CAVEAT__WIRE__STATUS__REFUSED_UNAVAILABLE);
    store_sql(h, "DROP TRIGGER fail");
    /* the next turn's leaves are its own: none of the rolled back one's
     * bytes stay in the buffer the leaves are written in */
    char second[64];
    assert_int_equal(publish_example(h, "vulnerable_individual", NULL, second, sizeof second),
                     CAVEAT__WIRE__STATUS__OK);
    assert_true(harness_stop(h));
    char *text = leaves(h);
    const char *accepted = strstr(text, "\"event\":\"accepted\"");
    assert_non_null(accepted);
    assert_null(strstr(accepted + 1, "\"event\":\"accepted\""));
    char named[100];
    snprintf(named, sizeof named, "\"report\":\"%s\"", second);
    const char *found = strstr(accepted, named);
    assert_non_null(found);
    assert_true(found < strchr(accepted, '\n')); /* in the accepted leaf's own line */
    free(text);
    char out[4096];
    assert_int_equal(verify(h, out, sizeof out), 0);
    finish(&h);
}

/*  A leaf changed underneath: verify names it, and the broker refuses to
 *  start (it would sign over it), saying why; everyone else's data stays. */
static void test_a_changed_log_stops_the_broker(void **state)
{
    (void)state;
    harness_t *h = started();
    char id[64];
    assert_int_equal(publish_example(h, "vulnerable_individual", NULL, id, sizeof id),
                     CAVEAT__WIRE__STATUS__OK);
    assert_true(harness_stop(h));
    int64_t reports = store_count(h, "SELECT count(*) FROM reports");
    /* the leaves are blobs: the same bytes, with one changed */
    store_sql(h, "UPDATE tlog_leaves SET data = CAST(replace(CAST(data AS TEXT), "
                 "'\"delivered\":true', '\"delivered\":fals') AS BLOB)"
                 " WHERE CAST(data AS TEXT) LIKE '%\"accepted\"%'");
    assert_int_equal(store_count(h, "SELECT count(*) FROM tlog_leaves"
                                    " WHERE CAST(data AS TEXT) LIKE '%\"delivered\":fals%'"),
                     1);
    char out[4096];
    assert_int_equal(verify(h, out, sizeof out), 1);
    assert_non_null(strstr(out, "do not hash to its root"));
    assert_false(harness_start(h, NULL));
    assert_true(log_lines_with(h, "do not hash to its root") > 0);
    assert_int_equal(store_count(h, "SELECT count(*) FROM reports"), reports);
    finish(&h);
}

/*  `caveat audit ARGS DIR-of-h REST`, its status; its output in out. */
static int audit_on(harness_t *h, const char *verb, const char *rest, char *out, size_t size)
{
    char args[2000];
    snprintf(args, sizeof args, "%s '%s' %s", verb, harness_path(h, "data"), rest);
    return audit_cli(args, out, size);
}

/*  Leaves edited to hold a terminal's escape and a line break in their
 *  category, one as raw bytes (no longer JSON) and one as JSON's escapes:
 *  trace and summary print them as \xNN, so a leaf cannot clear the
 *  reviewer's screen or add a line that passes for another leaf; sample
 *  draws nothing from leaves that are not the tree its seed signs. */
static void edit_category(harness_t *h, const char *id, const char *with)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "UPDATE tlog_leaves SET data = CAST(replace(CAST(data AS TEXT), '\"category\":\"', "
             "'\"category\":\"' || %s) AS BLOB) WHERE CAST(data AS TEXT) LIKE "
             "'{\"event\":\"accepted\"%%\"%s\"%%'",
             with, id);
    store_sql(h, sql);
}

static void test_an_edited_leaf_reaches_the_terminal_as_text(void **state)
{
    (void)state;
    harness_t *h = started();
    char raw[64], escaped[64], out[16384];
    assert_int_equal(publish_example(h, "vulnerable_individual", NULL, raw, sizeof raw),
                     CAVEAT__WIRE__STATUS__OK);
    assert_int_equal(publish_example(h, "vulnerable_individual", NULL, escaped, sizeof escaped),
                     CAVEAT__WIRE__STATUS__OK);
    assert_true(harness_stop(h));
    edit_category(h, raw, "char(27) || '[2J' || char(10) || '9 {}'");
    edit_category(h, escaped, "'\\u001b[2J\\n9 {}'");
    static const char *const runs[][2] = {{"trace", NULL}, {"summary", ""}};
    for (size_t i = 0; i < sizeof runs / sizeof *runs; i++) {
        assert_int_equal(audit_on(h, runs[i][0], runs[i][1] ? runs[i][1] : raw, out, sizeof out),
                         0);
        assert_null(strchr(out, 27));
        assert_non_null(strstr(out, "\\x1b[2J\\x0a9 {}"));
    }
    /* a sample draws from the leaves its seed signs alone: none here */
    assert_int_equal(audit_on(h, "sample", "--count 2", out, sizeof out), 1);
    assert_non_null(strstr(out, "the leaves are not the tree the seed checkpoint of"));
    assert_int_equal(audit_on(h, "trace", raw, out, sizeof out), 0);
    assert_null(strchr(strchr(out, '\n') + 1, '\n')); /* still one line */
    /* a bidirectional override would show the rest of the line reversed */
    edit_category(h, raw, "'a' || char(8238) || 'b'");
    assert_int_equal(audit_on(h, "trace", raw, out, sizeof out), 0);
    assert_null(strstr(out, "\xe2\x80\xae"));
    assert_non_null(strstr(out, "a\\xe2\\x80\\xaeb"));
    finish(&h);
}

/*  A report's leaves are found by its id: trace lists them, prove
 *  --report proves its acceptance (with --to, only for an agency it was
 *  decided for), and an id two originators share is not proved blindly. */
static void test_a_report_is_traced_and_proved(void **state)
{
    (void)state;
    harness_t *h = started();
    char id[64], other[64], rest[256], out[8192];
    assert_int_equal(publish_as(h, "hum-bcu-hull", "vulnerable_individual", NULL, id, sizeof id),
                     CAVEAT__WIRE__STATUS__OK);
    assert_int_equal(
        publish_as(h, "hum-bcu-hull", "vulnerable_individual", "shared-7", other, sizeof other),
        CAVEAT__WIRE__STATUS__OK);
    assert_int_equal(
        publish_as(h, "hull-cc", "intervention_review", "shared-7", other, sizeof other),
        CAVEAT__WIRE__STATUS__OK);
    assert_true(harness_stop(h));

    assert_int_equal(audit_on(h, "trace", id, out, sizeof out), 0);
    uint64_t index = strtoull(out, NULL, 10);
    assert_non_null(strstr(out, "{\"event\":\"accepted\""));
    assert_null(strchr(strchr(out, '\n') + 1, '\n')); /* one leaf names it */

    snprintf(rest, sizeof rest, "--report %s", id);
    assert_int_equal(audit_on(h, "prove", rest, out, sizeof out), 0);
    char want[64];
    snprintf(want, sizeof want, "c2sp.org/tlog-proof@v1\nindex %llu\n", (unsigned long long)index);
    assert_true(strncmp(out, want, strlen(want)) == 0);

    snprintf(rest, sizeof rest, "--report %s --to hull-cc", id);
    assert_int_equal(audit_on(h, "prove", rest, out, sizeof out), 0);
    snprintf(rest, sizeof rest, "--report %s --to no-such-agency", id);
    assert_int_equal(audit_on(h, "prove", rest, out, sizeof out), 1);
    assert_non_null(strstr(out, "decided for no-such-agency"));

    assert_int_equal(audit_on(h, "prove", "--report shared-7", out, sizeof out), 1);
    assert_non_null(strstr(out, "2 reports of different originators have the id shared-7"));
    assert_int_equal(audit_on(h, "trace", "shared-7", out, sizeof out), 0);
    assert_int_equal(audit_on(h, "trace", "shared-", out, sizeof out), 1); /* not a prefix */
    finish(&h);
}

/*  The counts of the "refusals" leaves, added up. */
static long counted_refusals(const char *text)
{
    long total = 0;
    const char *key = "\"event\":\"refusals\"";
    for (const char *at = text; (at = strstr(at, key)); at += strlen(key)) {
        const char *count = strstr(at, "\"count\":");
        assert_non_null(count);
        total += atol(count + strlen("\"count\":"));
    }
    return total;
}

/*  An agency sending reports to be refused: each is accounted for, but
 *  past REFUSALS_PER_SECOND a Publish's refusals are one leaf with their
 *  count, so it cannot grow the log faster than it sends; an id longer than
 *  any report's is not written. Another agency's report is recorded as
 *  ever. */
static void test_refusals_cannot_flood_the_log(void **state)
{
    (void)state;
    enum { MANY = 200 };
    harness_t *h = started();
    char id[64], long_id[1001];
    memset(long_id, 'x', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    assert_int_equal(publish_claiming(h, "hum-bcu-hull", "vulnerable_individual", long_id, "ne-ctu",
                                      id, sizeof id),
                     CAVEAT__WIRE__STATUS__REFUSED_SPOOFED_ORIGINATOR);
    cv_client_t *police = sender_of(h, "hum-bcu-hull");
    Caveat__Report *reports[MANY];
    cv_publish_result_t results[MANY];
    memset(results, 0, sizeof results);
    for (int i = 0; i < MANY; i++) {
        reports[i] = harness_report("vulnerable_individual");
        free(reports[i]->category);
        reports[i]->category = strdup("no-such-category");
    }
    cv_error_t err = {0};
    assert_int_equal(cv_client_publish(police, (const Caveat__Report *const *)reports, MANY,
                                       results, 10000, &err),
                     MANY);
    cv_publish_results_clear(results, MANY);
    for (int i = 0; i < MANY; i++)
        caveat__report__free_unpacked(reports[i], NULL);
    cv_client_destroy(&police);
    char other[64];
    assert_int_equal(publish_as(h, "hull-cc", "intervention_review", NULL, other, sizeof other),
                     CAVEAT__WIRE__STATUS__OK);
    long counted = stat_of(h, "refusals_counted");
    assert_true(harness_stop(h));

    char *text = leaves(h);
    int one_by_one = occurrences(text, "\"event\":\"refused\"");
    assert_true(one_by_one <= 2 * 20); /* the rate's window may turn once */
    assert_int_equal(one_by_one + counted_refusals(text), MANY + 1);
    assert_int_equal(counted_refusals(text), counted);
    assert_true(counted > 0);
    assert_has(text, "\"report\":null,\"originator\":\"hum-bcu-hull\"");
    assert_null(strstr(text, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"));
    char want[128];
    snprintf(want, sizeof want, "\"report\":\"%s\",\"originator\":\"hull-cc\"", other);
    assert_has(text, want);
    free(text);
    char out[4096];
    assert_int_equal(verify(h, out, sizeof out), 0);
    finish(&h);
}

/*  `admin review` with args as the administrator: whether the broker
 *  agreed, and its reply in out. */
static bool review_as(harness_t *h, const char *agency, const char *const *args, size_t n,
                      char *out, size_t size)
{
    cv_client_t *c = sender_of(h, agency);
    bool ok = false;
    cv_error_t err = {0};
    char *text = cv_client_admin_args(c, "review", args, n, &ok, 5000, &err);
    snprintf(out, size, "%s", text ? text : err.msg);
    free(text);
    cv_client_destroy(&c);
    return ok;
}

/*  A review decision (MOPI) overrides the category's retention for one
 *  report: kept past its period, or disposed of at once, never delivered
 *  again; each decision is a leaf with the reviewer and the reason. Only
 *  an administrator may review, and a review that does not name a real
 *  report, a reason and a future date or a disposal changes nothing. */
static void test_a_review_decides_retention_and_is_recorded(void **state)
{
    (void)state;
    harness_t *h = started();
    char kept[64], other[64], out[4096], report_arg[96];
    assert_int_equal(
        publish_as(h, "hum-bcu-hull", "vulnerable_individual", NULL, kept, sizeof kept),
        CAVEAT__WIRE__STATUS__OK);
    assert_int_equal(
        publish_as(h, "hum-bcu-hull", "vulnerable_individual", NULL, other, sizeof other),
        CAVEAT__WIRE__STATUS__OK);
    int64_t leaves_before = store_count(h, "SELECT count(*) FROM tlog_leaves");

    snprintf(report_arg, sizeof report_arg, "report=%s", kept);
    const char *no_reason[] = {report_arg, "retain-until=2099-01-01T00:00:00Z"};
    const char *past[] = {report_arg, "retain-until=2001-01-01T00:00:00Z", "reason=late"};
    const char *unknown[] = {"report=no-such-report", "dispose", "reason=gone"};
    const char *both[] = {report_arg, "dispose", "retain-until=2099-01-01T00:00:00Z", "reason=x"};
    const char *dispose[] = {report_arg, "dispose", "reason=MOPI review: no longer needed"};
    /* a reason is stored, logged and read on terminals: no C1 control, no bad UTF-8 */
    const char *c1[] = {report_arg, "dispose",
                        "reason=MOPI\xc2\x9b"
                        "2Jreview"};
    const char *not_utf8[] = {report_arg, "dispose", "reason=MOPI \xff review"};
    assert_false(review_as(h, "hull-cc", dispose, 3, out, sizeof out)); /* not an administrator */
    assert_int_equal(log_lines_with(h, "admin request from hull-cc refused: not an administrator"),
                     1);
    assert_false(review_as(h, "caveat-admin", no_reason, 2, out, sizeof out));
    assert_non_null(strstr(out, "reason=TEXT is required"));
    assert_false(review_as(h, "caveat-admin", c1, 3, out, sizeof out));
    assert_non_null(strstr(out, "reason=TEXT is required"));
    assert_false(review_as(h, "caveat-admin", not_utf8, 3, out, sizeof out));
    assert_non_null(strstr(out, "reason=TEXT is required"));
    assert_false(review_as(h, "caveat-admin", past, 3, out, sizeof out));
    assert_non_null(strstr(out, "not in the future"));
    assert_false(review_as(h, "caveat-admin", unknown, 3, out, sizeof out));
    assert_non_null(strstr(out, "no such report"));
    assert_false(review_as(h, "caveat-admin", both, 4, out, sizeof out));

    /* kept to 2099, asked of the CLI as an administrator would */
    char command[2048];
    snprintf(command, sizeof command,
             "%s admin review %s --retain-until 2099-01-01T00:00:00Z --reason 'MOPI: keep' "
             "--broker %s --server-key %s/broker.cert --cert %s/caveat-admin.cert_secret "
             "| grep -q '\"retain_until\":\"2099-01-01T00:00:00Z\"'",
             CAVEAT_CLI, kept, harness_endpoint(h), harness_path(h, ""), harness_path(h, ""));
    assert_int_equal(system(command), 0);
    /* both long past their six years: only the one not reviewed goes */
    store_sql(h, "UPDATE reports SET created = 946684800, accepted = 946684800000");
    bool ok = false;
    char *text = admin(h, "purge", &ok);
    assert_true(ok);
    assert_non_null(strstr(text, other));
    assert_null(strstr(text, kept));
    free(text);

    assert_true(review_as(h, "caveat-admin", dispose, 3, out, sizeof out));
    assert_non_null(strstr(out, "\"disposed\":true"));
    assert_int_equal(store_count(h, "SELECT count(*) FROM reports"), 0);
    cv_client_t *council = client(h, "hull-cc", NULL, 0);
    assert_nothing_arrives(council, 500);
    cv_client_destroy(&council);
    assert_true(harness_stop(h));

    text = leaves(h);
    assert_int_equal(occurrences(text, "\"event\":\"review\""), 2);
    assert_has(text, "\"reviewer\":\"caveat-admin\",\"retain_until\":\"2099-01-01T00:00:00Z\","
                     "\"reason\":\"MOPI: keep\"");
    assert_has(text, "\"dispose\":true,\"reason\":\"MOPI review: no longer needed\"");
    char want[256];
    snprintf(want, sizeof want,
             "\"report\":\"%s\",\"originator\":\"hum-bcu-hull\","
             "\"category\":\"vulnerable_individual\",\"rule\":\"review\"",
             kept);
    assert_has(text, want);
    free(text);
    /* the refused reviews wrote nothing but the admin leaves */
    assert_true(store_count(h, "SELECT count(*) FROM tlog_leaves") > leaves_before);
    assert_int_equal(audit_on(h, "trace", kept, out, sizeof out), 0);
    assert_non_null(strstr(out, "\"event\":\"review\""));
    assert_int_equal(verify(h, out, sizeof out), 0);
    finish(&h);
}

/*  caveatd --audit-log off (for measuring the log's cost) says so in the
 *  log, once, and then records nothing more; the log still verifies, and
 *  the next start with it on records again. */
static void test_an_audit_log_turned_off_says_so(void **state)
{
    (void)state;
    const char *off[] = {"--audit-log", "off", NULL};
    harness_t *h = started_with(off);
    char id[64], out[4096];
    assert_int_equal(publish_as(h, "hum-bcu-hull", "vulnerable_individual", NULL, id, sizeof id),
                     CAVEAT__WIRE__STATUS__OK);
    assert_true(log_lines_with(h, "the audit log is off") == 1);
    assert_true(harness_stop(h));
    char *text = leaves(h);
    assert_int_equal(occurrences(text, "\"event\":\"audit off\""), 1);
    assert_null(strstr(text, "\"event\":\"accepted\""));
    free(text);
    assert_int_equal(verify(h, out, sizeof out), 0);

    assert_true(harness_start(h, NULL));
    assert_int_equal(publish_as(h, "hum-bcu-hull", "vulnerable_individual", NULL, id, sizeof id),
                     CAVEAT__WIRE__STATUS__OK);
    assert_true(harness_stop(h));
    text = leaves(h);
    assert_int_equal(occurrences(text, "\"event\":\"accepted\""), 1);
    free(text);
    assert_int_equal(verify(h, out, sizeof out), 0);
    harness_destroy(&h);
}

/*  One leaf's bytes, NUL-terminated (malloc'd), or NULL. */
static char *leaf_at(harness_t *h, uint64_t index)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT CAST(data AS TEXT) FROM tlog_leaves WHERE idx = %llu",
             (unsigned long long)index);
    sqlite3_stmt *s = query(h, sql);
    char *text =
        sqlite3_step(s) == SQLITE_ROW ? strdup((const char *)sqlite3_column_text(s, 0)) : NULL;
    done(s);
    return text;
}

/*  The root of the stored checkpoint of size. */
static void checkpoint_root(harness_t *h, int64_t size, cv_hash_t *root)
{
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT note FROM tlog_checkpoints WHERE size = %lld",
             (long long)size);
    sqlite3_stmt *s = query(h, sql);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    const char *note = (const char *)sqlite3_column_text(s, 0);
    size_t body = 0;
    cv_error_t err = {0};
    cv_checkpoint_t checkpoint;
    assert_true(cv_note_body(note, strlen(note), &body, &err));
    assert_true(cv_checkpoint_parse(note, body, &checkpoint, &err));
    *root = checkpoint.root;
    done(s);
}

/*  What the sample must be, worked out here from its definition: among
 *  the accepted leaves below size (of category, when given), the count of
 *  smallest SHA-256(root || index as 8 bytes big-endian), by index. */
static int expected_sample(harness_t *h, int64_t size, const char *category, int count,
                           uint64_t *out)
{
    cv_hash_t root;
    checkpoint_root(h, size, &root);
    uint8_t ranks[256][32];
    uint64_t indexes[256];
    int n = 0;
    char want[128];
    snprintf(want, sizeof want, "\"category\":\"%s\"", category ? category : "");
    for (int64_t i = 0; i < size && n < 256; i++) {
        char *leaf = leaf_at(h, (uint64_t)i);
        bool match =
            strncmp(leaf, "{\"event\":\"accepted\"", 19) == 0 && (!category || strstr(leaf, want));
        free(leaf);
        if (!match)
            continue;
        uint8_t input[40];
        memcpy(input, root.bytes, 32);
        for (int b = 0; b < 8; b++)
            input[32 + b] = (uint8_t)((uint64_t)i >> (56 - 8 * b));
        crypto_hash_sha256(ranks[n], input, sizeof input);
        indexes[n++] = (uint64_t)i;
    }
    bool taken[256] = {false};
    int picked = 0;
    for (; picked < count && picked < n; picked++) { /* the smallest not yet taken */
        int best = -1;
        for (int i = 0; i < n; i++)
            if (!taken[i] && (best < 0 || memcmp(ranks[i], ranks[best], 32) < 0))
                best = i;
        taken[best] = true;
    }
    int k = 0;
    for (int i = 0; i < n; i++) /* by index */
        if (taken[i])
            out[k++] = indexes[i];
    return picked;
}

/*  The leaf indexes a sample's text names ("leaf N, ..."), in order; each
 *  leaf is an acceptance of a report the sample names, as the log has it. */
static int sampled(harness_t *h, const char *text, uint64_t *out)
{
    int n = 0;
    for (const char *at = text; (at = strstr(at, "\nleaf ")); at++) {
        out[n] = strtoull(at + 6, NULL, 10);
        const char *report = strstr(at, ": report ");
        assert_non_null(report);
        char id[128];
        assert_int_equal(sscanf(report + 9, "%127s", id), 1);
        char *leaf = leaf_at(h, out[n]);
        char want[200];
        snprintf(want, sizeof want, "{\"event\":\"accepted\",");
        assert_true(strncmp(leaf, want, strlen(want)) == 0);
        snprintf(want, sizeof want, "\"report\":\"%s\"", id);
        assert_non_null(strstr(leaf, want));
        free(leaf);
        n++;
    }
    return n;
}

static void assert_sample(harness_t *h, const char *out, int64_t size, const char *category,
                          int count)
{
    uint64_t want[256], got[256];
    int n = expected_sample(h, size, category, count, want);
    char header[160];
    snprintf(header, sizeof header, "seeded by the checkpoint of ");
    assert_non_null(strstr(out, header));
    snprintf(header, sizeof header, " at size %lld, root ", (long long)size);
    if (!strstr(out, header))
        print_error("not seeded at size %lld:\n%s", (long long)size, out);
    assert_non_null(strstr(out, header));
    assert_int_equal(sampled(h, out, got), n);
    for (int i = 0; i < n; i++)
        assert_int_equal(got[i], want[i]);
}

/*  Publishes vulnerable (from the police) and reviews (from the council)
 *  reports of the example; the broker then stops, signing a checkpoint.
 *  Returns its size. */
static int64_t publish_set(harness_t *h, int vulnerable, int reviews)
{
    char id[64];
    for (int i = 0; i < vulnerable; i++)
        assert_int_equal(
            publish_as(h, "hum-bcu-hull", "vulnerable_individual", NULL, id, sizeof id),
            CAVEAT__WIRE__STATUS__OK);
    for (int i = 0; i < reviews; i++)
        assert_int_equal(publish_as(h, "hull-cc", "intervention_review", NULL, id, sizeof id),
                         CAVEAT__WIRE__STATUS__OK);
    assert_true(harness_stop(h));
    return store_count(h, "SELECT max(size) FROM tlog_checkpoints");
}

/*  A dip sample is the smallest ranks of SHA-256(root || index) among the
 *  accepted leaves a checkpoint covers: real acceptances, each with who
 *  was given which fields under which rule; the same for the same seed,
 *  drawn again from an earlier checkpoint for --seed; filters respected. */
static void test_a_dip_sample_is_reproducible(void **state)
{
    (void)state;
    harness_t *h = started();
    int64_t first = publish_set(h, 6, 3);
    assert_true(harness_start(h, NULL));
    int64_t last = publish_set(h, 6, 0);
    assert_true(last > first);
    char out[65536], again[65536], rest[256];

    assert_int_equal(audit_on(h, "sample", "--count 4", out, sizeof out), 0);
    assert_sample(h, out, last, NULL, 4);
    assert_int_equal(audit_on(h, "sample", "--count 4", again, sizeof again), 0);
    assert_string_equal(out, again);
    snprintf(rest, sizeof rest, "--count 4 --seed %lld", (long long)last);
    assert_int_equal(audit_on(h, "sample", rest, again, sizeof again), 0);
    /* the same draw, less the note that the store chose the seed */
    char *note = strstr(out, "caveat: note: seeded by the store's last checkpoint");
    assert_non_null(note);
    assert_null(strstr(again, "caveat: note: seeded by"));
    memmove(note, strchr(note, '\n') + 1, strlen(strchr(note, '\n') + 1) + 1);
    assert_string_equal(out, again);
    /* who was given what, under which rule, as the policy decides it */
    assert_non_null(strstr(out, "  hull-cc (hull-city-council): delivered under "));
    assert_non_null(strstr(out, "    masked (year): subjects.date_of_birth"));
    assert_non_null(strstr(out, "    masked (postcode_district): subjects.postcode"));
    assert_null(strstr(out, "Jordan")); /* decisions, never content */

    snprintf(rest, sizeof rest, "--count 4 --seed %lld", (long long)first);
    assert_int_equal(audit_on(h, "sample", rest, again, sizeof again), 0);
    assert_sample(h, again, first, NULL, 4);

    assert_int_equal(
        audit_on(h, "sample", "--count 10 --category intervention_review", out, sizeof out), 0);
    assert_sample(h, out, last, "intervention_review", 10);
    assert_int_equal(occurrences(out, "\nleaf "), 3);
    assert_int_equal(occurrences(out, ", category intervention_review"), 3);
    assert_int_equal(audit_on(h, "sample", "--count 3 --since 2000-01-01", out, sizeof out), 0);
    assert_int_equal(occurrences(out, "\nleaf "), 3);
    assert_int_equal(audit_on(h, "sample", "--count 3 --since 2999-01-01", out, sizeof out), 0);
    assert_int_equal(occurrences(out, "\nleaf "), 0);

    /* the category is named: a sample of two drawn from all fifteen is both
     *  intervention reviews (sent to no council) about one run in 35 */
    assert_int_equal(audit_on(h, "sample",
                              "--count 2 --category vulnerable_individual --format json", out,
                              sizeof out),
                     0);
    assert_int_equal(occurrences(out, "\"index\": "), 2);
    assert_non_null(strstr(out, "\"organisation\": \"hull-city-council\""));

    assert_int_equal(audit_on(h, "sample", "--count 2 --seed 99999", out, sizeof out), 1);
    assert_non_null(strstr(out, "no checkpoint of size 99999"));
    assert_int_equal(audit_on(h, "sample", "--count 0", out, sizeof out), 2);
    assert_int_equal(audit_on(h, "sample", "--count 2 --since yesterday", out, sizeof out), 2);
    assert_int_equal(audit_on(h, "sample", "", out, sizeof out), 2);
    finish(&h);
}

/*  The summary counts reports once per recipient organisation (two police
 *  agencies receive every vulnerable_individual report: it counts once for
 *  humberside-police), and the SVG chart parses and holds the counts. */
static void test_the_summary_counts_reports_per_organisation(void **state)
{
    (void)state;
    harness_t *h = started();
    publish_set(h, 3, 2);
    char out[16384], rest[1200], svg[700];
    assert_int_equal(audit_on(h, "summary", "", out, sizeof out), 0);
    static const char *const rows[][3] = {
        {"intervention_review", "humber-nhs-trust", "2"},
        {"intervention_review", "humberside-police", "2"},
        {"vulnerable_individual", "hull-city-council", "3"},
        {"vulnerable_individual", "humberside-police", "3"},
        {"vulnerable_individual", "ne-ctu", "3"},
    };
    const char *line = strchr(strchr(out, '\n') + 1, '\n') + 1; /* past the title and header */
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++, line = strchr(line, '\n') + 1) {
        char category[64], organisation[64], reports[16];
        assert_int_equal(sscanf(line, "%63s %63s %15s", category, organisation, reports), 3);
        assert_string_equal(category, rows[i][0]);
        assert_string_equal(organisation, rows[i][1]);
        assert_string_equal(reports, rows[i][2]);
    }
    assert_true(
        strncmp(line, "5 reports accepted, 5 shared with at least one organisation\n", 60) == 0);
    int later = audit_on(h, "summary", "--since 2999-01-01", out, sizeof out);
    if (later != 0)
        print_error("summary --since: %d\n%s\n", later, out);
    assert_int_equal(later, 0);
    assert_non_null(strstr(out, "0 reports accepted, 0 shared"));

    snprintf(svg, sizeof svg, "%s/shared.svg", harness_path(h, "data"));
    snprintf(rest, sizeof rest, "--svg '%s'", svg);
    int status = audit_on(h, "summary", rest, out, sizeof out);
    if (status != 0)
        print_error("summary --svg: %d\n%s\n", status, out);
    assert_int_equal(status, 0);
    char command[1600];
    snprintf(command, sizeof command,
             "python3 -c 'import sys, xml.etree.ElementTree as E\n"
             "ns = \"{http://www.w3.org/2000/svg}\"\n"
             "svg = E.parse(sys.argv[1]).getroot()\n"
             "assert svg.tag == ns + \"svg\"\n"
             "print(\"|\".join(r.find(ns + \"title\").text for r in svg.iter(ns + \"rect\")"
             " if r.find(ns + \"title\") is not None))\n"
             "print(\"|\".join(t.text or \"\" for t in svg.iter(ns + \"text\")))' '%s' 2>&1",
             svg);
    FILE *pipe = popen(command, "r");
    size_t got = fread(out, 1, sizeof out - 1, pipe);
    out[got] = '\0';
    assert_int_equal(pclose(pipe), 0);
    assert_non_null(strstr(out, "vulnerable_individual, humberside-police: 3|"));
    assert_non_null(strstr(out, "intervention_review, humber-nhs-trust: 2|"));
    assert_non_null(strstr(out, "Reports shared, by category and recipient organisation|"));
    assert_non_null(strstr(out, "|Reports shared|"));
    assert_non_null(strstr(out, "|Recipient organisation|"));
    finish(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_what_the_broker_did_is_in_its_log),
        cmocka_unit_test(test_no_two_leaves_are_salted_alike),
        cmocka_unit_test(test_a_store_of_format_4_keeps_its_checksums),
        cmocka_unit_test(test_a_rolled_back_turn_leaves_no_leaf),
        cmocka_unit_test(test_a_changed_log_stops_the_broker),
        cmocka_unit_test(test_a_report_is_traced_and_proved),
        cmocka_unit_test(test_an_edited_leaf_reaches_the_terminal_as_text),
        cmocka_unit_test(test_refusals_cannot_flood_the_log),
        cmocka_unit_test(test_a_review_decides_retention_and_is_recorded),
        cmocka_unit_test(test_an_audit_log_turned_off_says_so),
        cmocka_unit_test(test_a_dip_sample_is_reproducible),
        cmocka_unit_test(test_the_summary_counts_reports_per_organisation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
